"""Which app a git request may reach: one check for the HTTP and the SSH door alike.

An app the user may not reach gets the same answer as one that does not exist, so
a push never tells a stranger which app names are taken.
"""

from __future__ import annotations

from paas.errors import NotFound
from paas.store import App, Store, User


def app_for_git(store: Store, user: User, name: str) -> App:
    """The app named `name` if `user` may push to it and fetch it; NotFound otherwise."""
    app = store.find_app(name)
    if app is None or not store.can_access(user, app):
        raise NotFound(f"There is no app named '{name}'. Create it with `paas apps:create {name}`.")
    return app
