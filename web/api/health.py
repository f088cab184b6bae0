"""`GET /api/health`: each component's state, 200 when all are up, 503 naming what is down."""

from __future__ import annotations

from typing import Any

import redis
from flask import jsonify
from flask.typing import ResponseReturnValue

from paas import keys
from web.api import api, rds
from web.api.schema import spec

#: Components that prove they run by refreshing a heartbeat key in Redis.
HEARTBEAT_COMPONENTS = ("worker", "agent", "router")


@api.get("/health")
@spec(response=dict[str, Any])
def health() -> ResponseReturnValue:
    components = {"web": "up"}
    try:
        r = rds()
        r.ping()
        components["redis"] = "up"
        beats = r.mget([keys.heartbeat(c) for c in HEARTBEAT_COMPONENTS])
        for component, beat in zip(HEARTBEAT_COMPONENTS, beats, strict=True):
            components[component] = "up" if beat else "down"
    except (redis.RedisError, OSError):
        components["redis"] = "down"
        for component in HEARTBEAT_COMPONENTS:
            components[component] = "unknown"
    down = sorted(c for c, state in components.items() if state != "up")
    body = {"status": "degraded" if down else "ok", "components": components}
    if down:
        body["message"] = "down: " + ", ".join(down)
    return jsonify(body), 503 if down else 200
