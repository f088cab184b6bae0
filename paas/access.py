"""Who works on an app: adding, changing and removing collaborators, and transferring the
app, as both the REST API and the dashboard do it.

The rules the store keeps (an app's owner is not a collaborator, so cannot be removed
or given a role; a transfer leaves the previous owner on as `deploy`) hold for every
caller; the permission checks (`paas.permissions`) are the caller's, before these run.
"""

from __future__ import annotations

from paas.errors import InvalidInput, NotFound
from paas.store import App, Store, User
from paas.store_accounts import ROLES

#: The role a collaborator gets when none is given.
DEFAULT_ROLE = "deploy"


def user_named(store: Store, name: object) -> User:
    user = store.user_by_name(name) if isinstance(name, str) else None
    if user is None:
        raise NotFound(f"no user named {name!r}; an admin adds users with `paas users:add`")
    return user


def check_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def add_collaborator(store: Store, app: App, user_name: object, role: object) -> User:
    """Give the named user `role` on the app; Conflict if they already have one."""
    user = user_named(store, user_name)
    store.set_collaborator(app, user, check_role(role), create=True)
    return user


def change_role(store: Store, app: App, user_name: object, role: object) -> User:
    """Change a collaborator's role; NotFound if they are not one."""
    user = user_named(store, user_name)
    store.set_collaborator(app, user, check_role(role), create=False)
    return user


def removal_action(caller: User, user_name: str) -> str:
    """The permission action removing `user_name` needs: anyone on an app may leave it,
    only those who manage it may remove others."""
    return "read" if user_name == caller.name else "manage"


def remove_collaborator(store: Store, app: App, user_name: object) -> User:
    user = user_named(store, user_name)
    store.remove_collaborator(app, user)
    return user


def transfer(store: Store, app: App, owner_name: object) -> App:
    """Make the named user the app's owner; the previous owner stays on as `deploy`."""
    return store.transfer_app(app, user_named(store, owner_name))
