"""The platform's event vocabulary, defined once.

Every step of the push, release and dyno life cycle is a named event written
to the app's log stream as a platform line (`paas[build]: build.started …`),
where the CLI's `logs`, the dashboard's activity feed and metrics find it.
"""

from __future__ import annotations

import logging

import redis

from paas import logs

log = logging.getLogger(__name__)

BUILD_STARTED = "build.started"
BUILD_SUCCEEDED = "build.succeeded"
BUILD_FAILED = "build.failed"
RELEASE_CREATED = "release.created"
DEPLOY_STARTED = "deploy.started"
DYNO_STARTING = "dyno.starting"
DYNO_UP = "dyno.up"
DYNO_HEALTHY = "dyno.healthy"
DYNO_CRASHED = "dyno.crashed"
DYNO_STOPPED = "dyno.stopped"
DEPLOY_SWITCHED = "deploy.switched"
DEPLOY_FINISHED = "deploy.finished"
DEPLOY_FAILED = "deploy.failed"
APP_CREATED = "app.created"
CONFIG_CHANGED = "config.changed"
FORMATION_CHANGED = "formation.changed"

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
    except redis.RedisError as exc:  # an event must never break the step it describes
        log.warning("could not record %s for %s: %s", line, app, exc)
