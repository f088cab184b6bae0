"""Rate limits counted in Redis: the REST API's requests per token, and failed logins per
client address and per user name.

Each limit is a counter per identity that starts at its first hit and lasts a window of
`seconds`; past the limit, the caller is told to come back when the counter ends. The
identities are kept as digests, so no token or user name is written to Redis. Without
Redis nothing is counted and callers go on: a limit must not lock everyone out because
Redis is down.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis

from paas import keys

#: Failed logins allowed per client address, and per user name, in LOGIN_WINDOW seconds.
LOGIN_FAILURES = 10
LOGIN_WINDOW = 300


def digest(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Count:
    value: int
    retry_after: int  # whole seconds until the counter ends, at least 1


def hit(r: redis.Redis, key: str, seconds: int) -> Count | None:
    """Add one to the counter `key`, which starts at its first hit and ends `seconds`
    later; None when Redis cannot be reached."""
    try:
        with r.pipeline() as pipe:
            _, value, ttl = pipe.set(key, 0, ex=seconds, nx=True).incr(key).ttl(key).execute()
            if ttl < 0:  # it ended between the two commands: INCR made it without a TTL
                r.expire(key, seconds)
                ttl = seconds
    except redis.RedisError:
        return None
    return Count(int(value), max(1, int(ttl)))


def take_back(r: redis.Redis, key: str) -> None:
    """Undo a `hit`."""
    try:
        if r.decr(key) <= 0:  # nothing left to count, or it ended and DECR made it anew
            r.delete(key)
    except redis.RedisError:
        return  # the count stays one high until the counter ends


class LoginAttempt:
    """One login attempt, counted against its client address and its user name before the
    credentials are checked, so parallel guesses cannot slip past the limit, and taken
    back when it succeeds, so only failures add up and a good login is never slowed."""

    def __init__(self, r: redis.Redis, address: str, name: str | None = None) -> None:
        self.r = r
        identities = [f"address:{address}"]
        if name:
            identities.append(f"name:{name.strip().lower()}")
        self.counters = [keys.login_failures(digest(i)) for i in identities]

    def start(self) -> int | None:
        """None when the attempt may go on; else the seconds to wait, after LOGIN_FAILURES
        failures from this address or for this name within LOGIN_WINDOW seconds."""
        counts = [hit(self.r, key, LOGIN_WINDOW) for key in self.counters]
        waits = [c.retry_after for c in counts if c is not None and c.value > LOGIN_FAILURES]
        return max(waits) if waits else None

    def succeeded(self) -> None:
        for key in self.counters:
            take_back(self.r, key)
