"""What the dashboard's scripts read: live logs and build output as Server-Sent Events,
and the metrics as JSON. The pages render the same data once for browsers without JS."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from paas import logs
from paas.agent import state as dyno_state
from paas.build import output
from paas.store import App
from web.dashboard import app_for_user, dashboard, rds, store
from web.dashboard.metrics import parse_router_line, summarize

#: A stream entry id (`1700000000000-0`), as a browser sends back in Last-Event-ID.
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
#: How long a stream may stay quiet before a comment line checks the client is still there.
_IDLE_MS = 5000


def line_matches(line: logs.LogLine, proc_filter: str) -> bool:
    """Whether a log line belongs to the chosen process type (`web`), `router`, `paas`,
    or to anything when no filter is chosen."""
    if not proc_filter:
        return True
    if proc_filter in ("router", "paas"):
        return line.source == proc_filter
    return line.source == "app" and line.proc.split(".", 1)[0] == proc_filter


def _sse(data: str, event: str | None = None, event_id: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    head += f"id: {event_id}\n" if event_id else ""
    # A line break in the data would end the field early: each line is a data field.
    return head + "".join(f"data: {part}\n" for part in data.split("\n")) + "\n"


def _event_stream(events: Iterator[str]) -> Response:
    return Response(events, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@dashboard.get("/apps/<name>/logs/stream")
def log_stream(name: str) -> Response:
    """The app's log lines as they arrive, after `Last-Event-ID` (a reconnect) or `after`
    (the last line the page already shows); `type` filters by process type."""
    app = app_for_user(name)
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or "$"
    if after != "$" and not _STREAM_ID.match(after):
        after = "$"
    proc_filter = request.args.get("type", "")
    r = rds()

    def events() -> Iterator[str]:
        # Something at once, so the browser sees the stream open before the first line.
        yield "retry: 2000\n\n"
        for line in logs.follow(r, app.name, after=after, block_ms=_IDLE_MS):
            if line is None:
                yield ": idle\n\n"
            elif line_matches(line, proc_filter):
                yield _sse(line.format(), event_id=line.id)

    return _event_stream(events())


@dashboard.get("/apps/<name>/builds/<int:build_id>/stream")
def build_stream(name: str, build_id: int) -> Response:
    """A build's output from its first line, then an `end` event with its outcome."""
    build = store().app_build(app_for_user(name), build_id)
    r = rds()

    def events() -> Iterator[str]:
        yield "retry: 2000\n\n"
        # A finished build whose stream is gone (kept an hour) will write no more.
        finished = build.status in ("succeeded", "failed")
        if finished and (store().build_output(build.id) is not None
                         or not output.so_far(r, build.id)[0]):
            yield _sse(json.dumps({"status": build.status, "reason": ""}), event="end")
            return
        for item in output.follow(r, build.id, block_ms=_IDLE_MS):
            if item is None:
                yield ": idle\n\n"
            elif isinstance(item, output.BuildEnd):
                yield _sse(json.dumps({"status": item.status, "reason": item.reason}),
                           event="end")
                return
            else:
                yield _sse(item)

    return _event_stream(events())


def metrics_for(app: App, minutes: int = 30) -> dict:
    """The last `minutes` of requests per minute, with memory per dyno where published."""
    now = time.time()
    lines = logs.since(rds(), app.name, now - minutes * 60)
    hits = (hit for line in lines if line.source == "router"
            if (hit := parse_router_line(line.ts, line.line)) is not None)
    body = summarize(hits, now, minutes)
    # The agent may publish a dyno's memory in its state; show it where it does.
    body["memory"] = [
        {"dyno": d["name"], "bytes": d["memory_bytes"]}
        for d in dyno_state.read(rds(), app.name) if isinstance(d.get("memory_bytes"), int)
    ]
    return body


@dashboard.get("/apps/<name>/metrics.json")
def metrics_data(name: str) -> ResponseReturnValue:
    return jsonify(metrics_for(app_for_user(name)))
