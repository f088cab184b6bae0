"""What the dashboard's tests share: reading a page's CSRF token and logging in through the
login form with the Flask test client."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from paas.store import Store


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def log_in(app: Flask, **credentials: str) -> FlaskClient:
    """A client logged in with `token=...` or `name=..., password=...`."""
    client = app.test_client()
    response = client.post("/login", data={"csrf_token": csrf_of(client), "next": "/",
                                           **credentials})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


#: The users of `team_app`, with their role on the app `hello` (olive owns it; zed has none).
TEAM = {"olive": "owner", "oona": "owner", "dee": "deploy", "vic": "view", "zed": None}


def team_app(store: Store) -> dict[str, str]:
    """The app `hello` owned by olive, with an owner, a deploy and a view collaborator, and
    zed who has no role on it; returns each user's API token."""
    users = {name: store.create_user(name) for name in TEAM}
    app = store.create_app("hello", users["olive"].id)
    for name, role in TEAM.items():
        if role is not None and name != "olive":
            store.set_collaborator(app, users[name], role, create=True)
    return {name: store.create_token(user.id) for name, user in users.items()}


def audit_actions(store: Store, app: str = "hello") -> list[tuple[str | None, str]]:
    """(user, action) of the app's audit log, oldest first."""
    return [(e.user, e.action) for e in reversed(store.audit(store.app(app)))]
