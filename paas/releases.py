"""Making releases, the one path every deploy takes (push, config change, rollback).

A release is a slug plus a snapshot of the config vars plus process types.
Creating one wakes the agent, which rolls the app onto it; callers that must
report the outcome wait for the release to leave `pending`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import redis

from paas import events, keys
from paas.errors import DeployFailed, InvalidInput
from paas.store import App, Build, Release, Store, User

#: The longest a release phase (predeploy and `release:`) may run; Heroku's limit.
RELEASE_PHASE_TIMEOUT = float(os.environ.get("PAAS_RELEASE_TIMEOUT", "3600"))
#: A wait for a deploy gives up when no agent has been alive for this long.
AGENT_GONE_AFTER = 30.0
#: How long a release's output stream outlives the mark that it settled.
SETTLED_TTL = 3600


def wake_agent(r: redis.Redis) -> None:
    r.publish(keys.agent_wake_channel(), "converge")


def create(
    store: Store,
    r: redis.Redis,
    app: App,
    *,
    description: str,
    user: User | None,
    build: Build | None = None,
    slug: str | None = None,
    commit_sha: str | None = None,
    process_types: dict[str, str] | None = None,
    config: dict[str, str] | None = None,
    app_json: dict[str, Any] | None = None,
) -> Release:
    """A new release of `app`; slug, process types and app.json default to the current
    release's."""
    if slug is None:
        base = store.release_for_deploy(app)
        if base is not None:
            slug, commit_sha = base.slug, base.commit_sha
            process_types = base.process_types
            app_json = base.app_json
    release = store.create_release(
        app,
        description=description,
        user=user,
        config=store.config_vars(app) if config is None else config,
        build=build,
        slug=slug,
        commit_sha=commit_sha,
        process_types=process_types,
        app_json=app_json,
    )
    events.emit(r, app.name, events.RELEASE_CREATED, release=f"v{release.version}",
                description=f'"{description}"')
    if slug is None:
        # Nothing to run yet (config set before the first push): the release is simply current.
        store.set_release_status(release, "succeeded")
        release = store.release(app, release.version)
    wake_agent(r)
    return release


def settled(r: redis.Redis, app: str, version: int) -> None:
    """Wake whoever waits for release `version` (`wait`) now that its status is final,
    rather than at its next look."""
    stream = keys.release_log(app, version)
    try:
        with r.pipeline() as pipe:
            pipe.xadd(stream, {"settled": "1"})
            pipe.expire(stream, SETTLED_TTL)
            pipe.execute()
    except redis.RedisError:
        pass  # the waiter still finds the status at its next look, 50 ms later


def rollback(store: Store, r: redis.Redis, app: App, user: User | None,
             version: int | None) -> Release:
    """A new release made of vN's slug and config (default: the one before the current)."""
    current = store.current_release(app)
    if version is None:
        if current is None:
            raise InvalidInput(f"{app.name} has no release to roll back from")
        earlier = [
            rel for rel in store.releases(app, limit=1000)
            if rel.version < current.version and rel.status == "succeeded" and rel.slug
        ]
        if not earlier:
            raise InvalidInput(f"{app.name} has no earlier release to roll back to")
        version = earlier[0].version
    target = store.release(app, version)
    if not target.slug:
        raise InvalidInput(f"v{version} has no build to run; choose a release made by a deploy")
    return create(
        store, r, app,
        description=f"Rollback to v{version}",
        user=user,
        slug=target.slug,
        commit_sha=target.commit_sha,
        process_types=target.process_types,
        config=target.config,
        app_json=target.app_json,
    )


def wait(
    store: Store,
    app: App,
    release: Release,
    timeout: float,
    *,
    r: redis.Redis | None = None,
    on_output: Callable[[str], None] | None = None,
) -> Release:
    """Block until the release has deployed or failed; raise DeployFailed on failure.

    With `r`, give up as soon as no agent is alive to deploy it, and pass each line of
    the release phase's output to `on_output` as it is printed."""
    deadline = time.monotonic() + timeout
    agent_seen = time.monotonic()
    after = "0-0"
    while release.status == "pending":
        now = time.monotonic()
        if now > deadline:
            raise DeployFailed(
                f"v{release.version} did not finish deploying within {timeout:g} s; "
                "`paas ps` and `paas logs` show what the dynos are doing"
            )
        if r is None:
            time.sleep(0.05)
        else:
            if r.exists(keys.heartbeat("agent")):
                agent_seen = now
            elif now - agent_seen > AGENT_GONE_AFTER:
                raise DeployFailed(f"v{release.version} is waiting for the agent, which is not "
                                   "running; restart the platform (`paas up`) to deploy it")
            after = _relay_output(r, app, release, after, on_output)
        release = store.release(app, release.version)
    if r is not None:
        _relay_output(r, app, release, after, on_output, block=False)
    if release.status == "failed":
        raise DeployFailed(f"v{release.version} failed to deploy: {release.status_reason}")
    return release


def _relay_output(r: redis.Redis, app: App, release: Release, after: str,
                  on_output: Callable[[str], None] | None, block: bool = True) -> str:
    """Pass on the release phase's new lines (waiting up to 50 ms for some, or for the
    release to settle)."""
    found = r.xread({keys.release_log(app.name, release.version): after}, count=500,
                    block=50 if block else None)
    for _, entries in found or []:
        for entry_id, fields in entries:
            after = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            line = fields.get(b"line")  # else the mark that the release settled
            if on_output is not None and line is not None:
                on_output(line.decode(errors="replace"))
    return after
