"""Procfile parsing: text in, process types out, with errors that name the line.

The format is Heroku's: `name: command` per line, blank lines and `#`
comments skipped. Duplicates and lines that are not `name: command` are
errors, because a silently ignored line is a process that never runs.
"""

from __future__ import annotations

import re

from paas.errors import InvalidInput

_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


class ProcfileError(InvalidInput):
    id = "invalid_procfile"


def parse(text: str) -> dict[str, str]:
    """Parse a Procfile's text into {process type: command}, in file order."""
    types: dict[str, str] = {}
    seen_at: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ProcfileError(
                f"Procfile line {number}: expected 'name: command', got {raw.strip()!r}"
            )
        name, command = match.group(1), match.group(2).strip()
        if name in types:
            raise ProcfileError(
                f"Procfile line {number}: process type {name!r} is already "
                f"defined on line {seen_at[name]}"
            )
        types[name] = command
        seen_at[name] = number
    return types
