"""Heroku-style `Range` pagination of list answers, and ETags on reads.

`Range: name ..; max=200` asks for items sorted by `name`, at most 200 of them;
`]hello..` starts after `hello`, `a..m` stays within; `order=desc` reverses. A
page that leaves items out answers 206 with `Next-Range` to ask for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, jsonify, request

from paas.errors import RangeNotSatisfiable
from paas.store_ranges import KeyRange

#: Items in one answer when the client does not ask (Heroku answers 200 by default; the
#: CLI's lists are expected whole, and it follows Next-Range when there is more).
DEFAULT_MAX = 1000
LARGEST_MAX = 1000
_RANGE = re.compile(r"^\s*(?P<field>[a-z_]+)\s*(?P<span>[^;]*)(?:;\s*(?P<options>.*))?$")
_WHOLE = re.compile(r"^-?[0-9]{1,30}$")


@dataclass(frozen=True)
class Asked:
    """What a request's `Range` asks of a list (or, without one, the list's default)."""

    field: str
    start: str = ""
    end: str = ""
    exclusive: bool = False
    limit: int = DEFAULT_MAX
    descending: bool = False


def parse_range(header: str | None, fields: tuple[str, ...], *, descending: bool = False,
                default_max: int = DEFAULT_MAX) -> Asked:
    """The `Range` header of a list sortable by `fields` (the first: the default). Without
    a header, the list's own default order; a header sorts ascending unless it says
    `order=desc`, as on Heroku."""
    if not header:
        return Asked(fields[0], limit=default_max, descending=descending)
    match = _RANGE.match(header)
    span = match["span"].strip() if match else ""
    if match is None or match["field"] not in fields or ".." not in span:
        raise RangeNotSatisfiable(f"Range must look like `{fields[0]} ..; max=200` (sortable "
                                  f"by {', '.join(fields)})")
    exclusive = span.startswith("]")
    span = span.removeprefix("]")
    # A value may hold dots (www.example.com): `]www.example.com..` (what Next-Range
    # sends) starts after all of it; otherwise the first `..` separates the bounds.
    start, end = (span[:-2], "") if span.endswith("..") else span.split("..", 1)
    limit, order = default_max, False
    for option in (match["options"] or "").split(","):
        key, _, value = option.strip().partition("=")
        if key == "max" and _WHOLE.match(value) and 0 < int(value) <= LARGEST_MAX:
            limit = int(value)
        elif key == "order" and value in ("asc", "desc"):
            order = value == "desc"
        elif key:
            raise RangeNotSatisfiable(f"unknown Range option {option.strip()!r}: use max=1 "
                                      f"to {LARGEST_MAX} and order=asc|desc")
    return Asked(match["field"], start.strip(), end.strip(), exclusive, limit, order)


def _whole(asked: Asked, text: str) -> int | None:
    if not text:
        return None
    if not _WHOLE.match(text):
        raise RangeNotSatisfiable(f"the Range of {asked.field} needs whole numbers, "
                                  f"not {text!r}")
    return int(text)


def paginate(items: list[dict[str, Any]], fields: tuple[str, ...], *,
             descending: bool = False, default_max: int = DEFAULT_MAX) -> Response:
    """`items` as a JSON list, sorted and cut by the request's `Range` (first field: the
    default; `descending`: the order without a Range)."""
    asked = parse_range(request.headers.get("Range"), fields, descending=descending,
                        default_max=default_max)
    field = asked.field
    numeric = bool(items) and isinstance(items[0][field], int)

    def key(value: Any) -> Any:
        return value if numeric else str(value)

    def bound(text: str) -> Any:
        return _whole(asked, text) if numeric else text

    chosen = sorted(items, key=lambda item: key(item[field]), reverse=asked.descending)
    if asked.start:
        low = bound(asked.start)
        chosen = [i for i in chosen
                  if (key(i[field]) < low if asked.descending else key(i[field]) > low)
                  or (not asked.exclusive and key(i[field]) == low)]
    if asked.end:
        high = bound(asked.end)
        chosen = [i for i in chosen
                  if (key(i[field]) >= high if asked.descending else key(i[field]) <= high)]
    return _answer(chosen[:asked.limit], len(chosen) > asked.limit, asked, fields)


def paginate_rows(fetch: Callable[[KeyRange], list[dict[str, Any]]], field: str, *,
                  descending: bool = False, default_max: int = DEFAULT_MAX) -> Response:
    """Like `paginate` for a list too long to load whole, sorted by one integer `field`:
    `fetch` answers the items of a KeyRange from the store."""
    asked = parse_range(request.headers.get("Range"), (field,), descending=descending,
                        default_max=default_max)
    window = KeyRange(_whole(asked, asked.start), _whole(asked, asked.end), asked.exclusive,
                      asked.descending, asked.limit + 1)  # one more: is there a next page?
    found = fetch(window)
    return _answer(found[:asked.limit], len(found) > asked.limit, asked, (field,))


def _answer(page: list[dict[str, Any]], more: bool, asked: Asked,
            fields: tuple[str, ...]) -> Response:
    response = jsonify(page)
    field = asked.field
    if page:
        response.headers["Content-Range"] = f"{field} {page[0][field]}..{page[-1][field]}"
    if more:
        response.status_code = 206
        order = ", order=desc" if asked.descending else ""
        response.headers["Next-Range"] = f"{field} ]{page[-1][field]}..; max={asked.limit}{order}"
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
