"""Heroku-style `Range` pagination of list answers, and ETags on reads.

`Range: name ..; max=200` asks for items sorted by `name`, at most 200 of them;
`]hello..` starts after `hello`, `a..m` stays within; `order=desc` reverses. A
page that leaves items out answers 206 with `Next-Range` to ask for the rest.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, jsonify, request

from paas.errors import InvalidInput

#: Items in one answer when the client does not ask (Heroku answers 200 by default; the
#: CLI's lists are expected whole, and it follows Next-Range when there is more).
DEFAULT_MAX = 1000
LARGEST_MAX = 1000
_RANGE = re.compile(
    r"^\s*(?P<field>[a-z_]+)\s*(?P<exclusive>\])?(?P<start>[^.;]*)\.\.(?P<end>[^;]*)"
    r"(?:;\s*(?P<options>.*))?$"
)


def paginate(items: list[dict[str, Any]], fields: tuple[str, ...]) -> Response:
    """`items` as a JSON list, sorted and cut by the request's `Range` (first field: the
    default)."""
    header = request.headers.get("Range")
    field, start, end, exclusive, limit, descending = fields[0], "", "", False, DEFAULT_MAX, False
    if header:
        match = _RANGE.match(header)
        if match is None or match["field"] not in fields:
            raise InvalidInput(f"Range must look like `{fields[0]} ..; max=200` (sortable by "
                               f"{', '.join(fields)})")
        field, start, end = match["field"], match["start"].strip(), match["end"].strip()
        exclusive = bool(match["exclusive"])
        for option in (match["options"] or "").split(","):
            key, _, value = option.strip().partition("=")
            if key == "max" and value.isdigit() and 0 < int(value) <= LARGEST_MAX:
                limit = int(value)
            elif key == "order" and value in ("asc", "desc"):
                descending = value == "desc"
            elif key:
                raise InvalidInput(f"unknown Range option {option.strip()!r}: use max=1 to "
                                   f"{LARGEST_MAX} and order=asc|desc")
    numeric = bool(items) and isinstance(items[0][field], int)

    def key(value: Any) -> Any:
        return value if numeric else str(value)

    def bound(text: str) -> Any:
        if not numeric:
            return text
        if not text.lstrip("-").isdigit():
            raise InvalidInput(f"the Range of {field} needs whole numbers")
        return int(text)

    chosen = sorted(items, key=lambda item: key(item[field]), reverse=descending)
    if start:
        low = bound(start)
        chosen = [i for i in chosen if (key(i[field]) < low if descending else key(i[field]) > low)
                  or (not exclusive and key(i[field]) == low)]
    if end:
        high = bound(end)
        chosen = [i for i in chosen
                  if (key(i[field]) >= high if descending else key(i[field]) <= high)]
    page = chosen[:limit]
    response = jsonify(page)
    if page:
        response.headers["Content-Range"] = f"{field} {page[0][field]}..{page[-1][field]}"
    if len(chosen) > limit:
        response.status_code = 206
        order = ", order=desc" if descending else ""
        response.headers["Next-Range"] = f"{field} ]{page[-1][field]}..; max={limit}{order}"
    response.headers["Accept-Ranges"] = ", ".join(fields)
    return response


def conditional(response: Response) -> Response:
    """An ETag on a successful JSON read; 304 when the client's If-None-Match matches."""
    if (request.method == "GET" and response.status_code == 200 and not response.is_streamed
            and response.mimetype == "application/json"):
        response.add_etag()
        response.headers["Cache-Control"] = "private, no-cache"
        response.vary.add("Authorization")
        response.make_conditional(request)
    return response
