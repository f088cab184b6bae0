"""The route table: which backends serve each app's web traffic.

The agent is the only writer; the router reads it. An entry is JSON:
`{"backends": [{"dyno": "web.1", "addr": "127.0.0.1:40123"}], "release": 3}`.
Each write is followed by a message on the routes channel naming the app, so
routers update within milliseconds; they also resync the whole table
periodically so a lost message heals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from paas import keys


@dataclass(frozen=True)
class Backend:
    dyno: str
    addr: str  # "host:port" or "unix:/path"


@dataclass(frozen=True)
class Route:
    app: str
    backends: tuple[Backend, ...] = field(default_factory=tuple)
    release: int | None = None

    def to_json(self) -> str:
        return json.dumps({
            "backends": [{"dyno": b.dyno, "addr": b.addr} for b in self.backends],
            "release": self.release,
        })

    @classmethod
    def from_json(cls, app: str, raw: str | bytes) -> Route:
        data = json.loads(raw)
        return cls(
            app=app,
            backends=tuple(Backend(b["dyno"], b["addr"]) for b in data.get("backends", [])),
            release=data.get("release"),
        )


def publish(r: redis.Redis, route: Route) -> None:
    r.hset(keys.routes(), route.app, route.to_json())
    r.publish(keys.routes_channel(), route.app)


def remove(r: redis.Redis, app: str) -> None:
    r.hdel(keys.routes(), app)
    r.publish(keys.routes_channel(), app)


def load(r: redis.Redis, app: str) -> Route | None:
    raw = r.hget(keys.routes(), app)
    return Route.from_json(app, raw) if raw is not None else None


def load_all(r: redis.Redis) -> dict[str, Route]:
    return {
        name.decode(): Route.from_json(name.decode(), raw)
        for name, raw in r.hgetall(keys.routes()).items()
    }
