"""`GET /api/health`: each component's state, 200 when all are up, 503 naming what is down."""

from __future__ import annotations

from typing import Any

import redis
from flask import jsonify
from flask.typing import ResponseReturnValue

from paas import keys
from web.api import api, rds, settings
from web.api.schema import spec

#: Components that prove they run by refreshing a heartbeat key in Redis.
HEARTBEAT_COMPONENTS = ("worker", "agent", "router")


@api.get("/health")
@spec(response=dict[str, Any])
def health() -> ResponseReturnValue:
    components = {"web": "up"}
    # The git SSH server runs only when PAAS_SSH_PORT does not turn it off.
    beating = HEARTBEAT_COMPONENTS + (("ssh",) if settings().ssh_port else ())
    try:
        r = rds()
        r.ping()
        components["redis"] = "up"
        beats = r.mget([keys.heartbeat(c) for c in beating])
        for component, beat in zip(beating, beats, strict=True):
            components[component] = "up" if beat else "down"
    except (redis.RedisError, OSError):
        components["redis"] = "down"
        for component in beating:
            components[component] = "unknown"
    down = sorted(c for c, state in components.items() if state != "up")
    body = {"status": "degraded" if down else "ok", "components": components}
    if down:
        body["message"] = "down: " + ", ".join(down)
    return jsonify(body), 503 if down else 200
