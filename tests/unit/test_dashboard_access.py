"""The dashboard's access tab through Flask's test client, with a real store and a real
Redis: owners and admins add collaborators, change roles, remove them and transfer the
app under the REST API's rules, and the audit log reads as if the API had done it;
everyone else sees the list only and changes nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from paas.store import Store
from tests.unit.dashboard_support import audit_actions, csrf_of, log_in, team_app


@dataclass
class Env:
    app: Flask
    store: Store
    tokens: dict[str, str]

    def client(self, user: str) -> FlaskClient:
        return log_in(self.app, token=self.tokens[user])

    def roles(self) -> dict[str, str]:
        return {c.user: c.role for c in self.store.collaborators(self.store.app("hello"))}


@pytest.fixture()
def env(make_web) -> Env:  # noqa: ANN001
    web = make_web()
    tokens = team_app(web.store)
    tokens["admin"] = web.admin_token
    return Env(web.app, web.store, tokens)


def flashes(client: FlaskClient, path: str = "/apps/hello/access") -> str:
    page = client.get(path).get_data(as_text=True)
    return " ".join(line.strip() for line in page.splitlines() if 'class="flash' in line)


def test_owners_add_change_and_remove_collaborators(env: Env) -> None:
    oona = env.client("oona")  # an owner collaborator, not the app's owner
    page = oona.get("/apps/hello/access").get_data(as_text=True)
    assert 'id="add-collaborator"' in page and 'id="transfer-app"' in page
    csrf = csrf_of(oona, "/apps/hello/access")
    back = {"csrf_token": csrf, "back": "/apps/hello/access"}
    added = oona.post("/apps/hello/collaborators", data={"user": "zed", "role": "view", **back})
    assert added.headers["Location"] == "/apps/hello/access"
    assert env.roles()["zed"] == "view"
    assert "Added zed to hello with the view role" in flashes(oona)
    assert env.client("zed").get("/apps/hello").status_code == 200

    oona.post("/apps/hello/collaborators/zed", data={"role": "deploy", **back})
    assert env.roles()["zed"] == "deploy"
    assert "zed now has the deploy role" in flashes(oona)

    oona.post("/apps/hello/collaborators/zed/remove", data=back)
    assert "zed" not in env.roles()
    assert "Removed zed from hello" in flashes(oona)
    assert env.client("zed").get("/apps/hello").status_code == 404


@pytest.mark.parametrize(("path", "form", "message"), [
    ("/apps/hello/collaborators", {"user": "vic", "role": "view"},
     "vic is already a collaborator"),
    ("/apps/hello/collaborators", {"user": "ghost", "role": "view"}, "no user named"),
    ("/apps/hello/collaborators", {"user": "zed", "role": "god"}, "role must be one of"),
    ("/apps/hello/collaborators", {"user": "olive", "role": "view"}, "olive owns hello"),
    ("/apps/hello/collaborators/zed", {"role": "view"}, "zed is not a collaborator"),
    ("/apps/hello/collaborators/olive", {"role": "view"}, "olive owns hello"),
    ("/apps/hello/collaborators/olive/remove", {}, "transfer it to someone else first"),
    ("/apps/hello/transfer", {"owner": "olive", "confirm": "hello"}, "olive already owns"),
    ("/apps/hello/transfer", {"owner": "zed", "confirm": "hell"}, "to transfer it"),
])
def test_what_the_api_refuses_the_access_tab_refuses(
    env: Env, path: str, form: dict[str, str], message: str
) -> None:
    before = env.roles()
    oona = env.client("oona")
    refused = oona.post(path, data={**form, "csrf_token": csrf_of(oona, "/apps/hello/access"),
                                    "back": "/apps/hello/access"})
    assert refused.headers["Location"] == "/apps/hello/access"
    assert message in flashes(oona).replace("&#39;", "'")
    assert env.roles() == before and env.store.app("hello").owner == "olive"
    assert audit_actions(env.store) == []


def test_the_owner_transfers_the_app_and_stays_on_with_deploy(env: Env) -> None:
    olive = env.client("olive")
    csrf = csrf_of(olive, "/apps/hello/access")
    olive.post("/apps/hello/transfer", data={"owner": "dee", "confirm": "hello",
                                             "csrf_token": csrf, "back": "/apps/hello/access"})
    assert env.store.app("hello").owner == "dee"
    assert env.roles() == {"dee": "owner", "olive": "deploy", "oona": "owner", "vic": "view"}
    assert "hello now belongs to dee; olive stays on with the deploy role" in flashes(olive)
    # olive is no owner any more: the page offers no access forms, and a forged one is 403.
    page = olive.get("/apps/hello/access").get_data(as_text=True)
    assert 'id="add-collaborator"' not in page and 'id="transfer-app"' not in page
    assert olive.post("/apps/hello/transfer", data={
        "owner": "olive", "confirm": "hello", "csrf_token": csrf}).status_code == 403


def test_an_admin_manages_access_to_any_app(env: Env) -> None:
    admin = env.client("admin")
    admin.post("/apps/hello/collaborators", data={
        "user": "zed", "role": "owner", "csrf_token": csrf_of(admin, "/apps/hello/access")})
    assert env.roles()["zed"] == "owner"


def test_anyone_may_leave_an_app(env: Env) -> None:
    vic = env.client("vic")
    page = vic.get("/apps/hello/access").get_data(as_text=True)
    assert 'action="/apps/hello/collaborators/vic/remove"' in page
    assert 'action="/apps/hello/collaborators/dee/remove"' not in page
    left = vic.post("/apps/hello/collaborators/vic/remove",
                    data={"csrf_token": csrf_of(vic, "/"), "back": "/apps/hello/access"})
    assert left.headers["Location"] == "/"
    assert "You left hello" in flashes(vic, "/")
    assert "vic" not in env.roles()
    assert vic.get("/apps/hello/access").status_code == 404


@pytest.mark.parametrize(("user", "status"), [("vic", 403), ("dee", 403), ("zed", 404)])
def test_without_the_owner_role_the_list_is_read_only_and_forms_are_refused(
    env: Env, user: str, status: int
) -> None:
    before = env.roles()
    client = env.client(user)
    page = client.get("/apps/hello/access")
    if status == 403:
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "olive" in html and "app owner" in html
        table = html[html.index('id="collaborators"'):html.index("</table>")]
        # The one form in the list is the user's own "leave the app".
        assert re.findall(r"<form[^>]*>", table) == [
            f'<form method="post" action="/apps/hello/collaborators/{user}/remove" '
            f'class="inline" data-remove="{user}">']
        assert 'id="add-collaborator"' not in html and 'id="transfer-app"' not in html
        assert "Only the app's owners and admins change who has access" in html
    else:
        assert page.status_code == 404
    csrf = csrf_of(client, "/")
    for path, form in (("/apps/hello/collaborators", {"user": "zed", "role": "owner"}),
                       ("/apps/hello/collaborators/vic", {"role": "owner"}),
                       ("/apps/hello/collaborators/oona/remove", {}),
                       ("/apps/hello/transfer", {"owner": user, "confirm": "hello"})):
        assert client.post(path, data={**form, "csrf_token": csrf}).status_code == status, path
    assert env.roles() == before and env.store.app("hello").owner == "olive"
    assert audit_actions(env.store) == []


def test_access_forms_without_the_csrf_token_are_refused(env: Env) -> None:
    before = env.roles()
    olive = env.client("olive")
    for path, form in (("/apps/hello/collaborators", {"user": "zed", "role": "owner"}),
                       ("/apps/hello/collaborators/vic", {"role": "owner"}),
                       ("/apps/hello/collaborators/oona/remove", {}),
                       ("/apps/hello/transfer", {"owner": "zed", "confirm": "hello"})):
        assert olive.post(path, data=form).status_code == 400
        assert olive.post(path, data={**form, "csrf_token": "forged"}).status_code == 400
    assert env.roles() == before and env.store.app("hello").owner == "olive"


def test_access_changes_are_audited_as_the_api_audits_them(env: Env) -> None:
    olive = env.client("olive")
    csrf = csrf_of(olive, "/apps/hello/access")
    olive.post("/apps/hello/collaborators", data={"user": "zed", "role": "view",
                                                  "csrf_token": csrf})
    olive.post("/apps/hello/collaborators/zed", data={"role": "deploy", "csrf_token": csrf})
    olive.post("/apps/hello/collaborators/zed/remove", data={"csrf_token": csrf})
    olive.post("/apps/hello/transfer", data={"owner": "dee", "confirm": "hello",
                                             "csrf_token": csrf})
    entries = list(reversed(env.store.audit(env.store.app("hello"))))
    assert [(e.user, e.action, e.detail) for e in entries] == [
        ("olive", "create_collaborator", {"request": "POST /apps/hello/collaborators",
                                          "body": {"user": "zed", "role": "view"}}),
        ("olive", "update_collaborator", {"request": "POST /apps/hello/collaborators/zed",
                                          "body": {"role": "deploy"}}),
        ("olive", "delete_collaborator",
         {"request": "POST /apps/hello/collaborators/zed/remove"}),
        ("olive", "transfer_app", {"request": "POST /apps/hello/transfer",
                                   "body": {"owner": "dee"}}),
    ]
    # The API writes the same actions and bodies for the same changes.
    api = env.app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {env.tokens['dee']}"
    api.post("/api/apps/hello/collaborators", json={"user": "zed", "role": "view"})
    api.patch("/api/apps/hello/collaborators/zed", json={"role": "deploy"})
    latest = env.store.audit(env.store.app("hello"), limit=2)
    assert [(e.action, e.detail.get("body")) for e in reversed(latest)] == [
        ("create_collaborator", {"user": "zed", "role": "view"}),
        ("update_collaborator", {"role": "deploy"})]
