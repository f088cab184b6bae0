"""Accounts through the REST API: passwords and logging in, tokens, users, collaborators,
transfer, the audit log, and the permission matrix (every role against every action, over
the API and git smart-HTTP), with a real store and a real Redis."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from dulwich.repo import Repo
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import Client

from paas import ratelimit
from paas.config import Settings
from paas.git.http import GitApp
from paas.permissions import Decision, decide
from paas.store import Store
from paas.store_accounts import verify_password
from web import create_app


@dataclass
class Env:
    app: Flask
    client: FlaskClient
    store: Store
    tokens: dict[str, str]
    settings: Settings

    def as_user(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


USERS = {"admin": True, "olive": False, "vic": False, "dee": False, "oona": False,
         "nick": False, "zed": False}


@pytest.fixture()
def env(tmp_path: Path, redis_url: str, r: redis.Redis) -> Iterator[Env]:
    s = Settings(home=tmp_path, domain="localhost", http_port=8080,
                 redis_url_override=redis_url, runtime="process")
    store = Store(s.db_path)
    store.migrate()
    tokens = {}
    for name, is_admin in USERS.items():
        user = store.create_user(name, is_admin=is_admin)
        tokens[name] = store.create_token(user.id)
    app = create_app(s)
    yield Env(app, app.test_client(), store, tokens, s)
    app.extensions["paas_redis"].close()
    app.extensions["paas_store"].close()
    store.close()


def make_app(env: Env, name: str = "hello") -> None:
    """An app owned by olive with a view, a deploy and an owner collaborator, and one
    release that has not deployed (so a one-off run stops at "no release to run")."""
    app = env.store.create_app(name, env.store.user_by_name("olive").id)  # type: ignore[union-attr]
    for user, role in (("vic", "view"), ("dee", "deploy"), ("oona", "owner")):
        env.store.set_collaborator(app, env.store.user_by_name(user), role,  # type: ignore[arg-type]
                                   create=True)
    env.store.create_release(app, description="Deploy", user=None, config={"A": "1"},
                             slug="/slug", process_types={"web": "serve"})
    env.settings.repo_path(name).parent.mkdir(parents=True, exist_ok=True)
    Repo.init_bare(str(env.settings.repo_path(name)), mkdir=True).close()


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


# --- passwords, login, tokens, users -------------------------------------------------
def test_passwords_are_stored_as_scrypt_hashes(env: Env) -> None:
    ann = env.store.create_user("ann")
    env.store.set_password(ann, "correct horse")
    assert env.store.user_for_password("ann", "correct horse") == ann
    assert env.store.user_for_password("ann", "wrong horse") is None
    assert env.store.user_for_password("nobody", "correct horse") is None
    assert b"correct horse" not in Path(env.store.path).read_bytes()
    assert not verify_password("x", "md5$nonsense")


def test_login_with_a_password_gets_a_token_that_then_works(env: Env) -> None:
    made = env.client.post("/api/users", json={"name": "ann"}, headers=env.as_user("admin"))
    assert made.status_code == 201
    password = made.get_json()["password"]
    assert len(password) >= 16
    wrong = env.client.post("/api/account/tokens", json={}, headers=basic("ann", "nope-nope"))
    assert wrong.status_code == 401 and wrong.get_json()["message"] == "wrong user name or password"
    login = env.client.post("/api/account/tokens", json={"description": "laptop"},
                            headers=basic("ann", password))
    assert login.status_code == 201
    body = login.get_json()
    assert body["user"] == "ann" and body["description"] == "laptop"
    account = env.client.get("/api/account", headers={"Authorization": f"Bearer {body['token']}"})
    assert account.get_json() == {"name": "ann", "is_admin": False}
    # A password is for logging in only: everywhere else it is not a credential.
    assert env.client.get("/api/apps", headers=basic("ann", password)).status_code == 401


def test_failed_password_logins_are_limited_as_the_dashboards_are(env: Env) -> None:
    env.store.set_password(env.store.user_by_name("vic"), "correct horse")
    for _ in range(ratelimit.LOGIN_FAILURES):
        wrong = env.client.post("/api/account/tokens", json={}, headers=basic("vic", "guess"))
        assert wrong.status_code == 401
    refused = env.client.post("/api/account/tokens", json={},
                              headers=basic("vic", "correct horse"))
    assert refused.status_code == 429 and refused.get_json()["id"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= ratelimit.LOGIN_WINDOW
    # The name's count is the dashboard's too.
    form = env.app.test_client()
    form.get("/login")
    with form.session_transaction() as session:
        csrf = session["csrf"]
    assert form.post("/login", data={"csrf_token": csrf, "name": "vic",
                                     "password": "correct horse"}).status_code == 429
    # Tokens are not passwords: vic's token still works.
    assert env.client.get("/api/account", headers=env.as_user("vic")).status_code == 200


def test_tokens_are_listed_without_secrets_and_revoked(env: Env) -> None:
    created = env.client.post("/api/account/tokens", json={"description": "ci"},
                              headers=env.as_user("vic")).get_json()
    listed = env.client.get("/api/account/tokens", headers=env.as_user("vic")).get_json()
    assert [t["description"] for t in listed] == ["", "ci"]
    assert all("token" not in t for t in listed)
    assert listed[0]["last_used_at"] is not None  # the fixture's token, used just now
    ci = {"Authorization": f"Bearer {created['token']}"}
    assert env.client.get("/api/account", headers=ci).status_code == 200
    # Nobody revokes another user's token, not even knowing its id.
    other = env.client.delete(f"/api/account/tokens/{created['id']}", headers=env.as_user("dee"))
    assert other.status_code == 404
    revoked = env.client.delete(f"/api/account/tokens/{created['id']}", headers=env.as_user("vic"))
    assert revoked.status_code == 200
    assert env.client.get("/api/account", headers=ci).status_code == 401


def test_only_admins_add_users_and_names_and_passwords_are_checked(env: Env) -> None:
    assert env.client.post("/api/users", json={"name": "ann"},
                           headers=env.as_user("olive")).status_code == 403
    admin = env.as_user("admin")
    for bad in ({"name": "Ann Smith"}, {"name": "ann", "password": "short"},
                {"name": "ann", "is_admin": "yes"}, {"name": "ann", "colour": "red"}, {}):
        answer = env.client.post("/api/users", json=bad, headers=admin)
        assert answer.status_code == 422, bad
        assert answer.get_json()["id"] == "invalid_params"
    assert env.store.user_by_name("ann") is None
    made = env.client.post("/api/users", json={"name": "ann@example.com", "is_admin": True,
                                               "password": "long enough"}, headers=admin)
    assert made.get_json() == {"name": "ann@example.com", "is_admin": True}
    assert env.client.post("/api/users", json={"name": "ann@example.com"},
                           headers=admin).status_code == 409
    names = [u["name"] for u in env.client.get("/api/users", headers=admin).get_json()]
    assert "ann@example.com" in names


def test_changing_ones_password_needs_the_current_one(env: Env) -> None:
    env.store.set_password(env.store.user_by_name("vic"), "first password")  # type: ignore[arg-type]
    wrong = env.client.patch("/api/account", json={"password": "second password",
                                                   "current_password": "guess"},
                             headers=env.as_user("vic"))
    assert wrong.status_code == 403
    right = env.client.patch("/api/account", json={"password": "second password",
                                                   "current_password": "first password"},
                             headers=env.as_user("vic"))
    assert right.status_code == 200
    assert env.store.user_for_password("vic", "second password") is not None


# --- collaborators and transfer ---------------------------------------------------------
def test_collaborators_are_added_changed_and_removed_by_owners(env: Env) -> None:
    make_app(env)
    owner = env.as_user("olive")
    listed = env.client.get("/api/apps/hello/collaborators", headers=owner).get_json()
    assert {"user": "olive", "role": "owner", "app_owner": True} in listed
    assert [c["user"] for c in listed] == sorted(c["user"] for c in listed)
    added = env.client.post("/api/apps/hello/collaborators", json={"user": "zed", "role": "view"},
                            headers=owner)
    assert added.status_code == 201
    assert {"user": "zed", "role": "view", "app_owner": False} in added.get_json()
    assert env.client.post("/api/apps/hello/collaborators", json={"user": "zed"},
                           headers=owner).status_code == 409
    assert env.client.post("/api/apps/hello/collaborators", json={"user": "ghost"},
                           headers=owner).status_code == 404
    assert env.client.post("/api/apps/hello/collaborators", json={"user": "zed", "role": "god"},
                           headers=owner).status_code == 422
    assert env.client.get("/api/apps/hello", headers=env.as_user("zed")).status_code == 200
    changed = env.client.patch("/api/apps/hello/collaborators/zed", json={"role": "deploy"},
                               headers=owner)
    assert {"user": "zed", "role": "deploy", "app_owner": False} in changed.get_json()
    # Anyone may leave an app; only owners remove others.
    assert env.client.delete("/api/apps/hello/collaborators/dee",
                             headers=env.as_user("zed")).status_code == 403
    assert env.client.delete("/api/apps/hello/collaborators/zed",
                             headers=env.as_user("zed")).status_code == 200
    assert env.client.get("/api/apps/hello", headers=env.as_user("zed")).status_code == 404


def test_the_apps_owner_cannot_be_removed_only_replaced_by_a_transfer(env: Env) -> None:
    make_app(env)
    for remover in ("olive", "oona", "admin"):
        refused = env.client.delete("/api/apps/hello/collaborators/olive",
                                    headers=env.as_user(remover))
        assert refused.status_code == 409 and "apps:transfer" in refused.get_json()["message"]
    assert env.store.app("hello").owner == "olive"


def test_transfer_makes_the_previous_owner_a_deploy_collaborator(env: Env) -> None:
    make_app(env)
    moved = env.client.post("/api/apps/hello/transfer", json={"owner": "dee"},
                            headers=env.as_user("olive"))
    assert moved.get_json() == {"name": "hello", "owner": "dee"}
    roles = {c["user"]: c["role"] for c in env.client.get(
        "/api/apps/hello/collaborators", headers=env.as_user("dee")).get_json()}
    assert roles == {"dee": "owner", "olive": "deploy", "vic": "view", "oona": "owner"}
    again = env.client.post("/api/apps/hello/transfer", json={"owner": "olive"},
                            headers=env.as_user("olive"))
    assert again.status_code == 403 and "owner" in again.get_json()["message"]


# --- audit ----------------------------------------------------------------------------
def test_the_audit_log_names_who_changed_what_without_config_values(env: Env) -> None:
    make_app(env)
    env.client.patch("/api/apps/hello/config-vars", json={"SECRET": "hunter2"},
                     headers=env.as_user("dee"))
    env.client.post("/api/apps/hello/collaborators", json={"user": "zed", "role": "view"},
                    headers=env.as_user("oona"))
    env.client.patch("/api/apps/hello/formation", json={"updates": [{"type": "web",
                                                                     "quantity": 3}]},
                     headers=env.as_user("vic"))  # refused: not in the log
    entries = env.client.get("/api/apps/hello/audit", headers=env.as_user("olive")).get_json()
    assert [(e["user"], e["action"]) for e in entries] == [
        ("oona", "create_collaborator"), ("dee", "update_config")]
    assert entries[1]["detail"]["body"] == ["SECRET"]
    assert entries[1]["detail"]["release"] == "2"
    assert "hunter2" not in str(entries)
    assert env.client.get("/api/apps/hello/audit", headers=env.as_user("admin")).status_code == 200
    assert env.client.get("/api/apps/hello/audit", headers=env.as_user("dee")).status_code == 403


def test_an_app_of_a_reused_name_does_not_inherit_the_old_audit_log(env: Env) -> None:
    make_app(env)
    env.client.patch("/api/apps/hello/config-vars", json={"A": "2"}, headers=env.as_user("dee"))
    assert env.client.delete("/api/apps/hello", headers=env.as_user("olive")).status_code == 200
    env.client.post("/api/apps", json={"name": "hello"}, headers=env.as_user("zed"))
    entries = env.client.get("/api/apps/hello/audit", headers=env.as_user("zed")).get_json()
    assert [e["action"] for e in entries] == ["create_app"]


# --- the permission matrix --------------------------------------------------------------
# (action, method, path under /api/apps/hello, JSON body)
API_ACTIONS = [
    ("read", "GET", "", None),
    ("read", "GET", "/builds", None),
    ("read", "GET", "/releases", None),
    ("read", "GET", "/releases/1", None),
    ("read", "GET", "/formation", None),
    ("read", "GET", "/dynos", None),
    ("read", "GET", "/events", None),
    ("read", "GET", "/settings", None),
    ("read", "GET", "/buildpack-installations", None),
    ("read", "GET", "/collaborators", None),
    ("read", "GET", "/log-session", None),
    ("config:read", "GET", "/config-vars", None),
    ("config:write", "PATCH", "/config-vars", {"B": "2"}),
    ("rollback", "POST", "/releases", {"release": 1}),
    # A public address (source URLs may not point inward); no worker fetches it here.
    ("deploy", "POST", "/builds", {"source_blob": {"url": "http://93.184.215.14:9/app.tgz"}}),
    ("scale", "PATCH", "/formation", {"updates": [{"type": "web", "quantity": 2}]}),
    ("scale", "DELETE", "/dynos", None),
    ("run", "POST", "/dynos", {"command": "true"}),
    ("settings", "PATCH", "/settings", {"boot_timeout": 90}),
    ("settings", "PUT", "/buildpack-installations", {"updates": [{"buildpack": "python"}]}),
    ("settings", "DELETE", "/build-cache", None),
    ("manage", "POST", "/collaborators", {"user": "zed", "role": "view"}),
    ("manage", "PATCH", "/collaborators/vic", {"role": "deploy"}),
    ("transfer", "POST", "/transfer", {"owner": "zed"}),
    ("audit", "GET", "/audit", None),
    ("destroy", "DELETE", "", None),
]
ROLE_OF = {"admin": None, "olive": "owner", "oona": "owner", "dee": "deploy", "vic": "view",
           "nick": None}


@pytest.mark.parametrize("user", list(ROLE_OF))
@pytest.mark.parametrize(("action", "method", "path", "body"), API_ACTIONS,
                         ids=[f"{m} {p or '/'}" for _, m, p, _ in API_ACTIONS])
def test_api_permission_matrix(env: Env, user: str, action: str, method: str, path: str,
                               body: dict | None) -> None:
    make_app(env)
    expected = decide(ROLE_OF[user], user == "admin", action)
    answer = env.client.open(f"/api/apps/hello{path}", method=method, json=body,
                             headers=env.as_user(user))
    if expected is Decision.ALLOW:
        # The run stops at "no release to run" (409): the permission let it through.
        assert answer.status_code in ((409,) if action == "run" else (200, 201, 202))
    elif expected is Decision.FORBID:
        assert answer.status_code == 403
        assert f"this needs {ROLES_NEEDED[action]}" in answer.get_json()["message"]
    else:
        missing = env.client.open(f"/api/apps/nothere{path}", method=method, json=body,
                                  headers=env.as_user(user))
        assert answer.status_code == missing.status_code == 404
        assert answer.get_json()["message"] == missing.get_json()["message"].replace(
            "nothere", "hello")


ROLES_NEEDED = {"read": "view", "config:read": "deploy", "deploy": "deploy",
                "config:write": "deploy", "rollback": "deploy", "scale": "deploy",
                "run": "deploy", "settings": "deploy",
                "manage": "owner", "transfer": "owner", "audit": "owner", "destroy": "owner"}


def test_every_app_route_is_in_the_matrix_or_guarded_by_default(env: Env) -> None:
    """A write endpoint added later without naming its action needs `owner`, so a view
    collaborator is refused every non-GET route under /api/apps/<name>."""
    make_app(env)
    for rule in env.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/apps/<name>"):
            continue
        for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"}):  # type: ignore[operator]
            path = rule.rule.replace("<name>", "hello")
            for arg in rule.arguments - {"name"}:
                path = path.replace(f"<int:{arg}>", "1").replace(f"<{arg}>", "web")
            if path.endswith("/collaborators/web"):  # leaving an app is open to anyone on it
                continue
            answer = env.client.open(path, method=method, json={}, headers=env.as_user("vic"))
            assert answer.status_code == 403, (method, path)


@pytest.mark.parametrize("user", list(ROLE_OF))
@pytest.mark.parametrize("service", ["git-upload-pack", "git-receive-pack"])
def test_git_permission_matrix(env: Env, user: str, service: str) -> None:
    make_app(env)
    git = Client(GitApp(env.settings, env.store, env.app.extensions["paas_redis"]))
    auth = basic("git", env.tokens[user])
    answer = git.get(f"/hello.git/info/refs?service={service}", headers=auth)
    expected = decide(ROLE_OF[user], user == "admin",
                      "deploy" if service == "git-receive-pack" else "fetch")
    status = {Decision.ALLOW: 200, Decision.FORBID: 403, Decision.HIDE: 404}[expected]
    assert answer.status_code == status
    if expected is Decision.HIDE:
        assert answer.get_data(as_text=True) == git.get(
            f"/nothere.git/info/refs?service={service}", headers=auth
        ).get_data(as_text=True).replace("nothere", "hello")
    if expected is Decision.FORBID:
        assert "this needs deploy" in answer.get_data(as_text=True)
