"""Part of a list ordered by one integer column, as an API `Range` header asks for it,
and the SQL that selects it (the store modules' only shared piece of query building)."""

from __future__ import annotations

from dataclasses import dataclass

#: SQLite's integers: a bound past them could never match, so it is clamped.
_LOWEST, _HIGHEST = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class KeyRange:
    """Items whose key runs from `start` to `end` (both kept, or `start` left out when
    `exclusive`), in ascending order or, with `descending`, from `start` down to `end`;
    at most `limit` of them."""

    start: int | None = None
    end: int | None = None
    exclusive: bool = False
    descending: bool = False
    limit: int = 1000


def range_sql(column: str, window: KeyRange) -> tuple[str, list[int]]:
    """`AND` conditions, then `ORDER BY … LIMIT ?`, to append to a query's WHERE, with
    their parameters. `column` is one of the store's own column names, never input."""
    conditions, params = "", []
    past, short_of = ("<", ">") if window.descending else (">", "<")
    if window.start is not None:
        conditions += f" AND {column} {past if window.exclusive else past + '='} ?"
        params.append(min(max(window.start, _LOWEST), _HIGHEST))
    if window.end is not None:
        conditions += f" AND {column} {short_of}= ?"
        params.append(min(max(window.end, _LOWEST), _HIGHEST))
    order = "DESC" if window.descending else "ASC"
    params.append(max(window.limit, 0))
    return f"{conditions} ORDER BY {column} {order} LIMIT ?", params
