"""The platform's event vocabulary, defined once.

Every step of the push, release and dyno life cycle is a named event written
to the app's log stream as a platform line (`paas[build]: build.started …`),
where the CLI's `logs` shows it, and kept in the app's activity list (the newest
KEPT of them), which `paas events` and the dashboard's activity view read.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from paas import keys, logs

log = logging.getLogger(__name__)

BUILD_STARTED = "build.started"
BUILD_SUCCEEDED = "build.succeeded"
BUILD_FAILED = "build.failed"
RELEASE_CREATED = "release.created"
RELEASE_STARTED = "release.started"  # the release phase (predeploy, `release:`) began
RELEASE_SUCCEEDED = "release.succeeded"
RELEASE_FAILED = "release.failed"
RELEASE_SUPERSEDED = "release.superseded"
DEPLOY_STARTED = "deploy.started"
DYNO_STARTING = "dyno.starting"
DYNO_UP = "dyno.up"  # accepts connections on $PORT (or, without a port, started)
DYNO_HEALTHY = "dyno.healthy"  # passed its startup checks: may take traffic
DYNO_UNHEALTHY = "dyno.unhealthy"  # failed a check
DYNO_CRASHED = "dyno.crashed"
DYNO_DRAINED = "dyno.drained"  # out of the route table with no request left in flight
DYNO_STOPPED = "dyno.stopped"
DEPLOY_SWITCHED = "deploy.switched"
DEPLOY_POSTDEPLOY = "deploy.postdeploy"
DEPLOY_FINISHED = "deploy.finished"
DEPLOY_FAILED = "deploy.failed"
APP_CREATED = "app.created"
CONFIG_CHANGED = "config.changed"
FORMATION_CHANGED = "formation.changed"
SETTINGS_CHANGED = "settings.changed"

#: How many events an app's activity list keeps.
KEPT = 1000

VOCABULARY = frozenset(
    value for name, value in globals().items() if name.isupper() and isinstance(value, str)
)


def emit(r: redis.Redis, app: str, event: str, proc: str = "api", **fields: object) -> None:
    """Record `event` for `app` as a platform line: `deploy.switched release=v3 dynos=2`."""
    if event not in VOCABULARY:
        raise ValueError(f"unknown event {event!r}; add it to paas.events")
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    line = f"{event} {detail}".rstrip()
    try:
        logs.append(r, app, "paas", proc, line)
        record = json.dumps({"id": r.incr(keys.app_event_counter(app)), "ts": time.time(),
                             "event": event, "proc": proc,
                             "fields": {k: str(v) for k, v in fields.items()}})
        with r.pipeline() as pipe:
            pipe.lpush(keys.app_events(app), record)
            pipe.ltrim(keys.app_events(app), 0, KEPT - 1)
            pipe.execute()
    except redis.RedisError as exc:  # an event must never break the step it describes
        log.warning("could not record %s for %s: %s", line, app, exc)


def recent(r: redis.Redis, app: str, limit: int = 100) -> list[dict[str, Any]]:
    """The app's newest events, oldest first: {"id", "ts", "event", "proc", "fields"}."""
    found = [json.loads(item) for item in r.lrange(keys.app_events(app), 0, max(limit, 1) - 1)]
    # Events kept from before they had ids are the oldest: they count down from 0, newest
    # first, which gives each the same id however many newer ones arrive.
    older = 0
    for event in found:
        if "id" not in event:
            event["id"] = older
            older -= 1
    return found[::-1]
