"""Which app a git request may reach: one check for the HTTP and the SSH door alike.

Pushing needs the deploy role (or owner); fetching needs any role (see
paas.permissions). An app the user has no role on gets the same answer as one
that does not exist, so a push never tells a stranger which app names are taken.
"""

from __future__ import annotations

from paas import permissions
from paas.errors import NotFound
from paas.store import App, Store, User


def app_for_git(store: Store, user: User, name: str, pushing: bool) -> App:
    """The app named `name` if `user` may push to it (or fetch it); NotFound or Forbidden
    otherwise."""
    try:
        return permissions.authorize(store, user, name, "deploy" if pushing else "fetch")
    except NotFound:
        raise NotFound(
            f"There is no app named '{name}'. Create it with `paas apps:create {name}`."
        ) from None
