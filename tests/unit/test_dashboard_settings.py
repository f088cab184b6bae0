"""The dashboard's settings page through Flask's test client, with a real store and a real
Redis: its changes are written to the audit log as the REST API writes them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from paas.store import Store
from tests.unit.dashboard_support import csrf_of, log_in, team_app


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
