"""A build's output as a Redis stream, written by the worker and followed by the pusher.

Each entry is `{"line": text}`; the last is `{"end": "1", "status": ..., "reason": ...}`.
The stream expires an hour after the build ends; the store keeps the full text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import redis

from paas import keys

KEEP_SECONDS = 3600


@dataclass(frozen=True)
class BuildEnd:
    status: str  # succeeded or failed
    reason: str


class BuildOutput:
    """The writer's side; also keeps the lines so the store can save them at the end."""

    def __init__(self, r: redis.Redis, build_id: int) -> None:
        self.r = r
        self.key = keys.build_log(build_id)
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)
        self.r.xadd(self.key, {"line": text})

    def end(self, status: str, reason: str = "") -> None:
        self.r.xadd(self.key, {"end": "1", "status": status, "reason": reason})
        self.r.expire(self.key, KEEP_SECONDS)

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")


def reset(r: redis.Redis, build_id: int) -> None:
    """Start the build's stream empty, whatever an earlier store left under its key."""
    r.delete(keys.build_log(build_id))


def follow(r: redis.Redis, build_id: int, block_ms: int = 1000) -> Iterator[str | BuildEnd | None]:
    """Yield each line as it is written, then the BuildEnd; None on each idle period."""
    key = keys.build_log(build_id)
    last = "0"
    while True:
        batch = r.xread({key: last}, block=block_ms, count=200)
        if not batch:
            yield None
            continue
        for entry_id, fields in batch[0][1]:
            last = entry_id
            if fields.get(b"end"):
                yield BuildEnd(fields[b"status"].decode(), fields.get(b"reason", b"").decode())
                return
            yield fields[b"line"].decode("utf-8", "replace")


def so_far(r: redis.Redis, build_id: int) -> tuple[list[str], BuildEnd | None]:
    """The lines written until now and, if the build has ended, how (no waiting)."""
    lines: list[str] = []
    for _, fields in r.xrange(keys.build_log(build_id)):
        if fields.get(b"end"):
            return lines, BuildEnd(fields[b"status"].decode(), fields.get(b"reason", b"").decode())
        lines.append(fields[b"line"].decode("utf-8", "replace"))
    return lines, None
