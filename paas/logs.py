"""An app's log stream: dyno output, router lines and platform events in one place.

Entries live in a capped Redis stream per app. Each has `ts` (unix seconds,
float), `source` (`app`, `router` or `paas`), `proc` (`web.1`, `router`,
`build` …) and `line`. They are formatted the way Heroku shows them:
`2026-11-26T23:10:00.123456+00:00 app[web.1]: hello`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import redis.asyncio

from paas import keys

log = logging.getLogger(__name__)

MAX_LINES = 10_000

#: (app, source, proc, line): one entry for `appender`.
Entry = tuple[str, str, str, str]

# One XADD per line, made by Redis itself, so a batch is one command and one reply: a
# pipeline of XADDs costs the client a reply to parse per line, which is most of what a
# busy router would spend on its request lines. Consecutive lines of one app, source and
# proc travel as one run: their byte lengths and their bytes end to end, three arguments
# for the run. The client then encodes three arguments per run rather than four per line
# (redis-py spends microseconds on each), and any byte may be in a line.
_APPEND_MANY = """
local maxlen, ts = ARGV[1], ARGV[2]
local count = 0
for i = 1, #KEYS do
  local at = 4 * i - 1
  local source, proc, text = ARGV[at], ARGV[at + 1], ARGV[at + 3]
  local start = 1
  for size in string.gmatch(ARGV[at + 2], '%d+') do
    local stop = start + tonumber(size)
    redis.call('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', 'ts', ts,
               'source', source, 'proc', proc, 'line', string.sub(text, start, stop - 1))
    start = stop
    count = count + 1
  end
end
return count
"""


@dataclass(frozen=True)
class LogLine:
    id: str
    ts: float
    source: str
    proc: str
    line: str

    def format(self) -> str:
        stamp = datetime.fromtimestamp(self.ts, UTC).isoformat()
        return f"{stamp} {self.source}[{self.proc}]: {self.line}"


def append(r: redis.Redis, app: str, source: str, proc: str, line: str) -> None:
    r.xadd(
        keys.app_log(app),
        {"ts": repr(time.time()), "source": source, "proc": proc, "line": line},
        maxlen=MAX_LINES,
        approximate=True,
    )


def appender(r: redis.Redis | redis.asyncio.Redis) -> Callable[[Sequence[Entry]], object]:
    """A function that appends many entries, possibly to several apps, in one round trip
    (as `append` would one by one, stamped now). With an asyncio client it returns the
    awaitable of the call."""
    script = r.register_script(_APPEND_MANY)

    def append_many(entries: Sequence[Entry]) -> object:
        names: list[str] = []
        args: list[str | int | bytes] = [MAX_LINES, repr(time.time())]
        run: tuple[str, str, str] | None = None
        lines: list[bytes] = []
        for app, source, proc, line in entries:
            if (app, source, proc) != run:
                if run is not None:
                    _add_run(names, args, run, lines)
                run, lines = (app, source, proc), []
            lines.append(line.encode("utf-8", "replace"))  # a lone surrogate: "?"
        if run is not None:
            _add_run(names, args, run, lines)
        return script(keys=names, args=args)

    return append_many


def _add_run(names: list[str], args: list[str | int | bytes], run: tuple[str, str, str],
             lines: list[bytes]) -> None:
    app, source, proc = run
    names.append(keys.app_log(app))
    args += (source, proc, " ".join([str(len(line)) for line in lines]), b"".join(lines))


class Shipper:
    """Lines handed over from any thread and sent in batches, one `appender` call each,
    by a thread of its own: a dyno that logs every request then costs a list append per
    line rather than a Redis round trip. Lines keep their order; `flush` sends what was
    handed over so far before returning (before a line that must come after them)."""

    def __init__(self, r: redis.Redis, interval: float = 0.02, backlog: int = 100_000) -> None:
        """`interval`: how long a line may wait for others to share its trip;
        `backlog`: lines waiting at most (the oldest go first). A batch Redis refuses is
        dropped: an outage costs log lines, never the memory of the process."""
        self._append = appender(r)
        self._interval = interval
        self._lines: deque[Entry] = deque(maxlen=backlog)
        self._ready = threading.Event()
        self._sending = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._failing = False

    def put(self, app: str, source: str, proc: str, line: str) -> None:
        self._lines.append((app, source, proc, line))
        if not self._ready.is_set():
            if self._thread is None:
                self._start()
            self._ready.set()

    def flush(self) -> None:
        with self._sending:
            self._send()

    def _start(self) -> None:
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="log-shipper",
                                                 daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._ready.wait()
            time.sleep(self._interval)
            self._ready.clear()
            with self._sending:
                self._send()

    def _send(self) -> None:
        while self._lines:
            # a few thousand lines at most per call: a script runs alone in Redis
            batch = [self._lines.popleft() for _ in range(min(len(self._lines), 2000))]
            try:
                self._append(batch)
            except (redis.RedisError, OSError) as exc:
                if not self._failing:
                    log.warning("dropping log lines while Redis refuses them: %s", exc)
                self._failing = True
                return
            if self._failing:
                log.info("log lines reach Redis again")
            self._failing = False


def _decode(entry_id: bytes, fields: dict[bytes, bytes]) -> LogLine:
    return LogLine(
        id=entry_id.decode(),
        ts=float(fields.get(b"ts", b"0")),
        source=fields.get(b"source", b"app").decode(),
        proc=fields.get(b"proc", b"").decode(),
        line=fields.get(b"line", b"").decode("utf-8", "replace"),
    )


def recent(r: redis.Redis, app: str, count: int = 100) -> list[LogLine]:
    """The last `count` lines, oldest first."""
    entries = r.xrevrange(keys.app_log(app), count=count)
    return [_decode(i, f) for i, f in reversed(entries)]


def follow(
    r: redis.Redis, app: str, after: str = "$", block_ms: int = 5000
) -> Iterator[LogLine | None]:
    """Yield lines as they arrive after entry `after`; yields None on each idle period
    so a streaming caller can send a keep-alive or notice a closed client."""
    last = after
    while True:
        batch = r.xread({keys.app_log(app): last}, block=block_ms, count=500)
        if not batch:
            yield None
            continue
        for entry_id, fields in batch[0][1]:
            last = entry_id.decode()
            yield _decode(entry_id, fields)


def delete(r: redis.Redis, app: str) -> None:
    r.delete(keys.app_log(app))


def since(r: redis.Redis, app: str, ts: float, count: int = MAX_LINES) -> list[LogLine]:
    """The lines written since unix time `ts`, oldest first (stream ids are milliseconds)."""
    entries = r.xrange(keys.app_log(app), min=f"{int(ts * 1000)}-0", count=count)
    return [_decode(i, f) for i, f in entries]
