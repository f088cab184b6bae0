"""Making releases, the one path every deploy takes (push, config change, rollback).

A release is a slug plus a snapshot of the config vars plus process types.
Creating one wakes the agent, which rolls the app onto it; callers that must
report the outcome wait for the release to leave `pending`.
"""

from __future__ import annotations

import time

import redis

from paas import events, keys
from paas.errors import DeployFailed, InvalidInput
from paas.store import App, Build, Release, Store, User


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
) -> Release:
    """A new release of `app`; slug and process types default to the current release's."""
    if slug is None:
        base = store.release_for_deploy(app)
        if base is not None:
            slug, commit_sha = base.slug, base.commit_sha
            process_types = base.process_types
    release = store.create_release(
        app,
        description=description,
        user=user,
        config=store.config_vars(app) if config is None else config,
        build=build,
        slug=slug,
        commit_sha=commit_sha,
        process_types=process_types,
    )
    events.emit(r, app.name, events.RELEASE_CREATED, release=f"v{release.version}",
                description=f'"{description}"')
    if slug is None:
        # Nothing to run yet (config set before the first push): the release is simply current.
        store.set_release_status(release, "succeeded")
        release = store.release(app, release.version)
    wake_agent(r)
    return release


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
    )


def wait(store: Store, app: App, release: Release, timeout: float) -> Release:
    """Block until the release has deployed or failed; raise DeployFailed on failure."""
    deadline = time.monotonic() + timeout
    while release.status == "pending":
        if time.monotonic() > deadline:
            raise DeployFailed(
                f"v{release.version} did not finish deploying within {timeout:g} s; "
                "`paas ps` and `paas logs` show what the dynos are doing"
            )
        time.sleep(0.05)
        release = store.release(app, release.version)
    if release.status == "failed":
        raise DeployFailed(f"v{release.version} failed to deploy: {release.status_reason}")
    return release
