"""Who may do what to an app: the one decision every API endpoint and git request asks.

Roles, weakest first: `view` reads the app (info, builds, releases, formation,
dynos, logs, activity, collaborators) and may fetch its code; `deploy` also
reads and changes config vars, pushes, builds, rolls back, scales, restarts,
runs one-off dynos and changes settings, buildpacks, domains, maintenance and
certificates; `owner` also manages
collaborators, transfers and destroys the app and reads its audit log. Admins
may do everything to every app.

Config vars are not readable with `view`: they hold the app's secrets
(database URLs, API keys), and a read-only seat (a support engineer, a
dashboard viewer) should not carry them away.

A user with no role on an app is told it does not exist (404), so names of
other people's apps cannot be probed; one who can see the app but lacks the
role for the action gets 403 naming the role it needs.
"""

from __future__ import annotations

from enum import Enum

from paas.errors import Forbidden, NotFound
from paas.store import App, Store, User
from paas.store_accounts import ROLES

#: action -> the weakest role that may do it.
ACTIONS: dict[str, str] = {
    "read": "view",          # the app and its builds, releases, formation, dynos, logs
    "fetch": "view",         # git fetch/clone
    "config:read": "deploy",
    "config:write": "deploy",
    "deploy": "deploy",      # git push, builds from a tarball
    "rollback": "deploy",
    "scale": "deploy",       # formation, sizes, restart, stop
    "run": "deploy",         # one-off dynos
    "settings": "deploy",    # timeouts, buildpacks, build cache, domains, maintenance, certs
    "manage": "owner",       # collaborators
    "transfer": "owner",
    "destroy": "owner",
    "audit": "owner",
}


class Decision(Enum):
    ALLOW = "allow"
    HIDE = "hide"  # answer as if the app did not exist
    FORBID = "forbid"


def decide(role: str | None, is_admin: bool, action: str) -> Decision:
    """The pure rule: a role (None: none on this app) and an action to a decision."""
    needed = ACTIONS[action]  # a KeyError here is a typo in the caller, not user input
    if is_admin:
        return Decision.ALLOW
    if role is None:
        return Decision.HIDE
    return Decision.ALLOW if ROLES.index(role) >= ROLES.index(needed) else Decision.FORBID


def role_needed(action: str) -> str:
    return ACTIONS[action]


def allows(store: Store, user: User, app: App, action: str) -> bool:
    """Whether `user` may do `action` to `app` (a page asks, to offer only what works)."""
    return decide(store.role_of(user, app), user.is_admin, action) is Decision.ALLOW


def authorize(store: Store, user: User, name: str, action: str) -> App:
    """The named app if `user` may do `action` to it; else NotFound or Forbidden."""
    app = store.find_app(name)
    role = store.role_of(user, app) if app is not None else None
    decision = decide(role, user.is_admin, action) if app is not None else Decision.HIDE
    if decision is Decision.HIDE or app is None:
        raise NotFound(f"no app named {name!r}; `paas apps` lists yours")
    if decision is Decision.FORBID:
        needed = role_needed(action)
        raise Forbidden(
            f"you have the {role} role on {name}; this needs {needed}"
            f"{' or owner' if needed == 'deploy' else ''} (ask an owner: "
            f"`paas access:add {user.name} --role {needed} -a {name}`)"
        )
    return app
