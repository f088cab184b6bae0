"""The dashboard's settings page through Flask's test client, with a real store and a real
Redis: custom domains and maintenance mode changed from forms as the REST API changes
them, refused without the role or the CSRF token, and written to the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from paas import routes
from paas.store import Store
from tests.unit.dashboard_support import audit_actions, csrf_of, log_in, team_app


@dataclass
class Env:
    app: Flask
    store: Store
    tokens: dict[str, str]
    r: redis.Redis

    def client(self, user: str) -> FlaskClient:
        return log_in(self.app, token=self.tokens[user])


@pytest.fixture()
def env(make_web, r: redis.Redis) -> Env:  # noqa: ANN001
    web = make_web("paas.test")
    return Env(web.app, web.store, team_app(web.store), r)


def flashes(page: str) -> str:
    return " ".join(line.strip() for line in page.splitlines() if 'class="flash' in line)


def test_domains_are_added_and_removed_from_the_settings_page(env: Env) -> None:
    dee = env.client("dee")
    csrf = csrf_of(dee, "/apps/hello/settings")
    added = dee.post("/apps/hello/domains", data={"hostname": "WWW.Example.com.",
                                                  "csrf_token": csrf,
                                                  "back": "/apps/hello/settings"})
    assert added.status_code == 302 and added.headers["Location"] == "/apps/hello/settings"
    app = env.store.app("hello")
    assert [d.hostname for d in env.store.domains(app)] == ["www.example.com"]
    assert routes.load(env.r, "hello").domains == ("www.example.com",)  # type: ignore[union-attr]
    page = dee.get("/apps/hello/settings").get_data(as_text=True)
    assert "Added www.example.com" in flashes(page)
    assert "hello.paas.test" in page
    assert 'action="/apps/hello/domains/www.example.com/remove"' in page

    removed = dee.post("/apps/hello/domains/www.example.com/remove",
                       data={"csrf_token": csrf, "back": "/apps/hello/settings"})
    assert removed.headers["Location"] == "/apps/hello/settings"
    assert env.store.domains(app) == []
    assert routes.load(env.r, "hello").domains == ()  # type: ignore[union-attr]
    assert "Removed www.example.com" in flashes(dee.get("/apps/hello/settings").get_data(
        as_text=True))


def test_a_wildcard_domain_is_removed_by_its_own_form(env: Env) -> None:
    dee = env.client("dee")
    csrf = csrf_of(dee, "/apps/hello/settings")
    dee.post("/apps/hello/domains", data={"hostname": "*.example.org", "csrf_token": csrf})
    page = dee.get("/apps/hello/settings").get_data(as_text=True)
    action = re.search(r'action="(/apps/hello/domains/[^"]*example\.org/remove)"', page)
    assert action is not None
    dee.post(action.group(1), data={"csrf_token": csrf})
    assert env.store.domains(env.store.app("hello")) == []


@pytest.mark.parametrize(("hostname", "message"), [
    ("1.2.3.4", "is an IP address"),
    ("not a domain", "is not a domain name"),
    ("www.paas.test", "the platform&#39;s domain"),
    ("taken.example.com", "already a domain of another app"),
])
def test_a_refused_domain_is_told_as_a_flash_and_changes_nothing(
    env: Env, hostname: str, message: str
) -> None:
    env.store.add_domain(env.store.create_app("other", env.store.user_by_name("zed").id),  # type: ignore[union-attr]
                         "taken.example.com")
    dee = env.client("dee")
    refused = dee.post("/apps/hello/domains", data={
        "hostname": hostname, "csrf_token": csrf_of(dee, "/apps/hello/settings"),
        "back": "/apps/hello/settings"})
    assert refused.headers["Location"] == "/apps/hello/settings"
    page = dee.get("/apps/hello/settings").get_data(as_text=True)
    assert message in flashes(page) and 'class="flash error"' in page
    assert env.store.domains(env.store.app("hello")) == []
    assert audit_actions(env.store) == []


def test_maintenance_is_turned_on_and_off(env: Env) -> None:
    dee = env.client("dee")
    csrf = csrf_of(dee, "/apps/hello/settings")
    app = env.store.app("hello")
    page = dee.get("/apps/hello/settings").get_data(as_text=True)
    assert 'name="maintenance" value="on"' in page
    dee.post("/apps/hello/maintenance", data={"maintenance": "on", "csrf_token": csrf,
                                              "back": "/apps/hello/settings"})
    assert env.store.app_routing(app).maintenance is True
    assert routes.load(env.r, "hello").maintenance is True  # type: ignore[union-attr]
    page = dee.get("/apps/hello/settings").get_data(as_text=True)
    assert "Maintenance mode is on" in flashes(page)
    assert 'name="maintenance" value="off"' in page
    dee.post("/apps/hello/maintenance", data={"maintenance": "off", "csrf_token": csrf})
    assert env.store.app_routing(app).maintenance is False
    assert routes.load(env.r, "hello").maintenance is False  # type: ignore[union-attr]
    dee.post("/apps/hello/maintenance", data={"maintenance": "maybe", "csrf_token": csrf,
                                              "back": "/apps/hello/settings"})
    assert "on or off" in flashes(dee.get("/apps/hello/settings").get_data(as_text=True))
    assert env.store.app_routing(app).maintenance is False


def test_settings_changes_are_audited_as_the_api_audits_them(env: Env) -> None:
    # The same three changes through the API, for the shape to compare with.
    api = env.app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {env.tokens['oona']}"
    api.post("/api/apps/hello/domains", json={"hostname": "api.example.com"})
    api.patch("/api/apps/hello/routing", json={"maintenance": True})
    api.delete("/api/apps/hello/domains/api.example.com")
    dee = env.client("dee")
    csrf = csrf_of(dee, "/apps/hello/settings")
    dee.post("/apps/hello/domains", data={"hostname": "www.example.com", "csrf_token": csrf})
    dee.post("/apps/hello/maintenance", data={"maintenance": "off", "csrf_token": csrf})
    dee.post("/apps/hello/domains/www.example.com/remove", data={"csrf_token": csrf})
    entries = list(reversed(env.store.audit(env.store.app("hello"))))
    assert [(e.user, e.action) for e in entries] == [
        ("oona", "add_domain"), ("oona", "set_routing"), ("oona", "remove_domain"),
        ("dee", "add_domain"), ("dee", "set_routing"), ("dee", "remove_domain")]
    by_api, by_dashboard = entries[:3], entries[3:]
    assert [e.detail for e in by_api] == [
        {"request": "POST /api/apps/hello/domains", "body": {"hostname": "api.example.com"}},
        {"request": "PATCH /api/apps/hello/routing", "body": {"maintenance": True}},
        {"request": "DELETE /api/apps/hello/domains/api.example.com"}]
    assert [e.detail for e in by_dashboard] == [
        {"request": "POST /apps/hello/domains", "body": {"hostname": "www.example.com"}},
        {"request": "POST /apps/hello/maintenance", "body": {"maintenance": False}},
        {"request": "POST /apps/hello/domains/www.example.com/remove"}]


def test_a_view_collaborator_or_a_stranger_changes_nothing(env: Env) -> None:
    app = env.store.app("hello")
    env.store.add_domain(app, "www.example.com")
    for user, status in (("vic", 403), ("zed", 404)):
        client = env.client(user)
        csrf = csrf_of(client, "/")
        assert client.get("/apps/hello/settings").status_code == status
        for path, form in (("/apps/hello/domains", {"hostname": "new.example.com"}),
                           ("/apps/hello/domains/www.example.com/remove", {}),
                           ("/apps/hello/maintenance", {"maintenance": "on"})):
            assert client.post(path, data={**form, "csrf_token": csrf}).status_code == status
    assert [d.hostname for d in env.store.domains(app)] == ["www.example.com"]
    assert env.store.app_routing(app).maintenance is False
    assert audit_actions(env.store) == []


def test_settings_forms_without_the_csrf_token_are_refused(env: Env) -> None:
    dee = env.client("dee")
    app = env.store.app("hello")
    env.store.add_domain(app, "www.example.com")
    for path, form in (("/apps/hello/domains", {"hostname": "new.example.com"}),
                       ("/apps/hello/domains/www.example.com/remove", {}),
                       ("/apps/hello/maintenance", {"maintenance": "on"})):
        assert dee.post(path, data=form).status_code == 400
        assert dee.post(path, data={**form, "csrf_token": "forged"}).status_code == 400
    assert [d.hostname for d in env.store.domains(app)] == ["www.example.com"]
    assert env.store.app_routing(app).maintenance is False


def test_the_dashboards_other_forms_are_audited_too(env: Env) -> None:
    dee = env.client("dee")
    csrf = csrf_of(dee, "/apps/hello/settings")
    dee.post("/apps/hello/config", data={"key": "SECRET", "value": "hunter2", "csrf_token": csrf})
    dee.post("/apps/hello/buildpacks", data={"buildpacks": "python\n", "csrf_token": csrf})
    dee.post("/apps/hello/restart", data={"csrf_token": csrf})
    olive = env.client("olive")
    app = env.store.app("hello")
    olive.post("/apps/hello/delete", data={"confirm": "hello",
                                           "csrf_token": csrf_of(olive, "/")})
    assert env.store.find_app("hello") is None
    entries = list(reversed(env.store.audit(app)))  # kept by name, after the app is gone
    assert [(e.user, e.action) for e in entries] == [
        ("dee", "update_config"), ("dee", "set_buildpacks"), ("dee", "restart_dynos"),
        ("olive", "destroy_app")]
    assert entries[0].detail == {"request": "POST /apps/hello/config", "body": ["SECRET"],
                                 "release": "1"}
    assert entries[1].detail["body"] == {"updates": [{"buildpack": "python"}]}
    assert "hunter2" not in str(entries)
