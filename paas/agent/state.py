"""The dyno states the agent publishes, and how others read them."""

from __future__ import annotations

import json

import redis

from paas import keys


def publish(r: redis.Redis, app: str, dynos: dict[str, str]) -> None:
    """Replace the app's published dynos with {dyno id: JSON state}."""
    pipe = r.pipeline()
    pipe.delete(keys.dynos(app))
    if dynos:
        pipe.hset(keys.dynos(app), mapping=dynos)
    pipe.execute()


def read(r: redis.Redis, app: str) -> list[dict]:
    """The app's dynos as the agent last published them, sorted by name, each with its
    `id` (unique, where a name is not: an old web.1 drains beside the new one)."""
    return _dynos(r.hgetall(keys.dynos(app)))


def _dynos(raw: dict[bytes, bytes]) -> list[dict]:
    found = [{**json.loads(v), "id": k.decode()} for k, v in raw.items()]
    return sorted(found, key=lambda d: (d["type"], int(d["name"].rsplit(".", 1)[1]),
                                        d.get("release", 0)))


def read_many(r: redis.Redis, apps: list[str]) -> dict[str, list[dict]]:
    """read() for each of `apps`, in one round trip."""
    with r.pipeline(transaction=False) as pipe:
        for app in apps:
            pipe.hgetall(keys.dynos(app))
        found = pipe.execute()
    return {app: _dynos(raw) for app, raw in zip(apps, found, strict=True)}


def forget(r: redis.Redis, app: str) -> None:
    r.delete(keys.dynos(app))
