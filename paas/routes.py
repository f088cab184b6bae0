"""The route table: which backends serve each app's web traffic, and how it is reached.

Two writers, two hashes, one channel. The agent writes the backends (`publish`,
`remove`): an entry is JSON
`{"backends": [{"dyno": "web.1", "addr": "127.0.0.1:40123"}], "release": 3}`.
The API writes what users set about reaching an app (`publish_settings`): its custom
domains, maintenance mode and HTTPS redirect, and its TLS certificate
(`publish_certificate`), each in a hash of its own so neither writer can wipe what the
other wrote. Every write is followed by a message on the routes channel naming the app,
so routers update within milliseconds; they also resync the whole table periodically so
a lost message heals. `load` and `parse` merge backends and settings into one `Route`;
`load_all_raw` hands a resync the entries unparsed, so it parses only those that changed.
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
class RouteSettings:
    """What users set about reaching an app (SQLite keeps the truth; this is its copy)."""

    domains: tuple[str, ...] = ()  # lowercase; "*.example.com" is a wildcard
    maintenance: bool = False
    https_redirect: bool = False

    def to_json(self) -> str:
        return json.dumps({
            "domains": list(self.domains), "maintenance": self.maintenance,
            "https_redirect": self.https_redirect,
        })

    @classmethod
    def from_json(cls, raw: str | bytes) -> RouteSettings:
        data = json.loads(raw)
        return cls(
            domains=tuple(data.get("domains") or ()),
            maintenance=bool(data.get("maintenance", False)),
            https_redirect=bool(data.get("https_redirect", False)),
        )


NO_SETTINGS = RouteSettings()


@dataclass(frozen=True)
class Route:
    app: str
    backends: tuple[Backend, ...] = field(default_factory=tuple)
    release: int | None = None
    domains: tuple[str, ...] = ()
    maintenance: bool = False
    https_redirect: bool = False

    def to_json(self) -> str:
        """The agent's half of the entry; the settings travel in their own hash."""
        return json.dumps({
            "backends": [{"dyno": b.dyno, "addr": b.addr} for b in self.backends],
            "release": self.release,
        })

    @classmethod
    def from_json(
        cls, app: str, raw: str | bytes | None, settings: RouteSettings = NO_SETTINGS
    ) -> Route:
        """The route of `app` from its entry (None: no dynos published yet) and settings;
        entries written before settings existed, or carrying them inline, both read."""
        data = json.loads(raw) if raw is not None else {}
        return cls(
            app=app,
            backends=tuple(Backend(b["dyno"], b["addr"]) for b in data.get("backends", [])),
            release=data.get("release"),
            domains=tuple(data.get("domains") or settings.domains),
            maintenance=bool(data.get("maintenance", settings.maintenance)),
            https_redirect=bool(data.get("https_redirect", settings.https_redirect)),
        )


def publish(r: redis.Redis, route: Route) -> None:
    r.hset(keys.routes(), route.app, route.to_json())
    r.publish(keys.routes_channel(), route.app)


def remove(r: redis.Redis, app: str) -> None:
    """Forget the app's backends (its settings stay until `remove_settings`)."""
    r.hdel(keys.routes(), app)
    r.publish(keys.routes_channel(), app)


def publish_settings(r: redis.Redis, app: str, settings: RouteSettings) -> None:
    r.hset(keys.route_settings(), app, settings.to_json())
    r.publish(keys.routes_channel(), app)


def remove_settings(r: redis.Redis, app: str) -> None:
    """The app is gone: forget its settings and certificate."""
    pipe = r.pipeline()
    pipe.hdel(keys.route_settings(), app)
    pipe.hdel(keys.certificates(), app)
    pipe.execute()
    r.publish(keys.routes_channel(), app)


#: An app's two entries as stored (backends, settings), unparsed; None where missing.
RawEntry = tuple[bytes | None, bytes | None]


def parse(app: str, entry: RawEntry) -> Route | None:
    """The route of `app` from its raw entries; None when neither exists."""
    raw, settings = entry
    if raw is None and settings is None:
        return None
    return Route.from_json(app, raw, RouteSettings.from_json(settings) if settings else NO_SETTINGS)


def load_raw(r: redis.Redis, app: str) -> RawEntry:
    pipe = r.pipeline(transaction=False)
    pipe.hget(keys.routes(), app)
    pipe.hget(keys.route_settings(), app)
    raw, settings = pipe.execute()
    return raw, settings


def load_all_raw(r: redis.Redis) -> dict[str, RawEntry]:
    """Every app's raw entries: a reader that keeps the last copy parses only what
    changed (the router's periodic resync of thousands of routes)."""
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.routes())
    pipe.hgetall(keys.route_settings())
    entries, settings = pipe.execute()
    return {
        name.decode(): (entries.get(name), settings.get(name))
        for name in entries.keys() | settings.keys()
    }


def load(r: redis.Redis, app: str) -> Route | None:
    """The app's route; None when neither its backends nor its settings are known."""
    return parse(app, load_raw(r, app))


# --- certificates ---------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """An app's TLS certificate chain and private key, PEM."""

    cert_pem: str
    key_pem: str

    def to_json(self) -> str:
        return json.dumps({"cert": self.cert_pem, "key": self.key_pem})


def publish_certificate(r: redis.Redis, app: str, cert: Certificate | None) -> None:
    if cert is None:
        r.hdel(keys.certificates(), app)
    else:
        r.hset(keys.certificates(), app, cert.to_json())
    r.publish(keys.routes_channel(), app)


def load_certificate(r: redis.Redis, app: str) -> Certificate | None:
    raw = r.hget(keys.certificates(), app)
    if raw is None:
        return None
    data = json.loads(raw)
    return Certificate(data["cert"], data["key"])


def load_certificates(r: redis.Redis) -> dict[str, Certificate]:
    return {
        name.decode(): Certificate(data["cert"], data["key"])
        for name, raw in r.hgetall(keys.certificates()).items()
        for data in (json.loads(raw),)
    }
