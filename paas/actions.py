"""Changes to an app that both the REST API and the dashboard make, in one place.

Each validates its input (raising InvalidInput with what to do next), changes the
store, records the event and wakes the agent, so a config change or a scale made
from a form deploys exactly like one made with the CLI.
"""

from __future__ import annotations

import redis

from paas import apps as app_ops
from paas import events, releases
from paas import sizes as dyno_sizes
from paas.build import sources
from paas.errors import InvalidInput
from paas.store import App, Release, Store, User


def update_config(store: Store, r: redis.Redis, app: App, user: User | None,
                  changes: dict[str, object]) -> tuple[dict[str, str], Release]:
    """Set (or, with None, unset) config vars; returns the new config and its release."""
    if not changes:
        raise InvalidInput("give at least one config var to set or unset")
    for key, value in changes.items():
        app_ops.check_config_key(key)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"the value of {key} must be a string, or null to unset it")
    config = store.update_config(app, changes)  # type: ignore[arg-type]
    set_keys = sorted(k for k, v in changes.items() if v is not None)
    unset_keys = sorted(k for k, v in changes.items() if v is None)
    parts = []
    if set_keys:
        parts.append("Set " + ", ".join(set_keys))
    if unset_keys:
        parts.append("Unset " + ", ".join(unset_keys))
    release = releases.create(store, r, app, description="; ".join(parts) + " config vars",
                              user=user, config=config)
    events.emit(r, app.name, events.CONFIG_CHANGED, release=f"v{release.version}",
                keys=",".join(sorted(changes)))
    return config, release


def update_formation(store: Store, r: redis.Redis, app: App, updates: object) -> None:
    """Apply `[{"type": "web", "quantity": 2, "size": "standard-2x"}]` (either or both)."""
    if not isinstance(updates, list) or not updates:
        raise InvalidInput('send {"updates": [{"type": "web", "quantity": 2}]}')
    release = store.release_for_deploy(app)
    known = release.process_types if release else {}
    quantities: dict[str, int] = {}
    sizes: dict[str, str] = {}
    for update in updates:
        ptype = update.get("type") if isinstance(update, dict) else None
        if ptype not in known:
            listed = ", ".join(known) or "none yet; push the app first"
            raise InvalidInput(f"{app.name} has no process type {ptype!r} (it has: {listed})")
        if "quantity" not in update and "size" not in update:
            raise InvalidInput(f"give a quantity or a size for {ptype}")
        if "quantity" in update:
            quantity = update["quantity"]
            if (not isinstance(quantity, int) or isinstance(quantity, bool)
                    or not 0 <= quantity <= 100):
                raise InvalidInput(f"the quantity of {ptype} must be a whole number from 0 to 100")
            quantities[ptype] = quantity
        if "size" in update:
            size = update["size"]
            dyno_sizes.limits(size if isinstance(size, str) else repr(size))
            sizes[ptype] = size
    store.set_formation(app, quantities)
    store.set_formation_sizes(app, sizes)
    events.emit(r, app.name, events.FORMATION_CHANGED,
                **{ptype: qty for ptype, qty in quantities.items()},
                **{f"{ptype}.size": size for ptype, size in sizes.items()})
    releases.wake_agent(r)


def formation(store: Store, app: App) -> list[dict]:
    """Each process type of the release to run, with its quantity, command and size."""
    release = store.release_for_deploy(app)
    types = release.process_types if release else {}
    quantities = store.formation(app)
    sizes = store.formation_sizes(app)
    return [
        {"type": ptype, "quantity": quantities.get(ptype, 0), "command": command,
         **dyno_sizes.describe(sizes.get(ptype, dyno_sizes.DEFAULT_SIZE))}
        for ptype, command in types.items()
    ]


def restart(store: Store, r: redis.Redis, app: App) -> int:
    """A rolling restart of every dyno; returns the app's new restart sequence number."""
    seq = store.bump_restart(app)
    releases.wake_agent(r)
    return seq


def set_buildpacks(store: Store, app: App, entries: list[object]) -> list[str]:
    """Set the app's buildpacks, in order, from built-in names or URLs (empty: detect)."""
    urls = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise InvalidInput('each update needs a "buildpack": a built-in name or a URL')
        urls.append(sources.normalise(entry))
    if len(set(urls)) != len(urls):
        raise InvalidInput("a buildpack is listed twice; list each once")
    return store.set_buildpacks(app, urls)
