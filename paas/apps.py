"""Creating and destroying apps: the name rules, the git repo and the files an app owns."""

from __future__ import annotations

import re
import shutil

import redis
from coolname import generate_slug
from dulwich.repo import Repo

from paas import events, keys, logs, releases, routes
from paas.config import Settings
from paas.errors import InvalidInput
from paas.store import App, Store, User

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{2,29}$")
CONFIG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str) -> None:
    if not APP_NAME.match(name) or name.endswith("-"):
        raise InvalidInput(
            f"{name!r} is not a valid app name: use 3 to 30 lowercase letters, digits "
            "and dashes, starting with a letter and not ending with a dash"
        )


def check_config_key(key: str) -> None:
    if not CONFIG_KEY.match(key):
        raise InvalidInput(
            f"{key!r} is not a valid config var name: use letters, digits and underscores, "
            "not starting with a digit"
        )


def random_name(store: Store) -> str:
    for _ in range(50):
        name = generate_slug(2)
        if APP_NAME.match(name) and store.find_app(name) is None:
            return name
    raise InvalidInput("could not find a free random name; give the app a name")


def create(settings: Settings, store: Store, r: redis.Redis, owner: User,
           name: str | None) -> App:
    name = name or random_name(store)
    check_name(name)
    app = store.create_app(name, owner.id)
    repo_path = settings.repo_path(name)
    if repo_path.exists():  # left by an app of the same name destroyed mid-way
        shutil.rmtree(repo_path)
    repo_path.parent.mkdir(parents=True, exist_ok=True)
    Repo.init_bare(str(repo_path), mkdir=True).close()
    events.emit(r, name, events.APP_CREATED, owner=owner.name)
    return app


def destroy(settings: Settings, store: Store, r: redis.Redis, app: App) -> None:
    """Remove the app from the store first (so the agent stops its dynos), then its files."""
    store.delete_app(app)
    releases.wake_agent(r)
    shutil.rmtree(settings.repo_path(app.name), ignore_errors=True)
    shutil.rmtree(settings.slugs_dir / app.name, ignore_errors=True)
    shutil.rmtree(settings.cache_dir / app.name, ignore_errors=True)
    logs.delete(r, app.name)
    r.delete(keys.app_events(app.name), keys.app_event_counter(app.name))
    routes.remove_settings(r, app.name)
