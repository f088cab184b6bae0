"""The REST API through Flask's test client, with a real store and a real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from paas.store import Store


@pytest.fixture()
def client(make_web) -> FlaskClient:  # noqa: ANN001
    web = make_web()
    client = web.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {web.admin_token}"
    client.ann_token = web.store.create_token(web.store.create_user("ann").id)  # type: ignore[attr-defined]
    return client


def test_health_needs_no_token_and_names_what_is_down(client: FlaskClient) -> None:
    response = client.get("/api/health", headers={"Authorization": ""})
    assert response.status_code == 503
    body = response.get_json()
    assert body["components"]["redis"] == "up"
    assert body["components"]["agent"] == "down"
    assert "agent" in body["message"]


def test_requests_without_a_valid_token_get_401_json(client: FlaskClient) -> None:
    response = client.get("/api/apps", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.get_json()["id"] == "unauthorized"


def test_create_app_validates_the_name_and_makes_a_repo(
    client: FlaskClient, tmp_path: Path
) -> None:
    bad = client.post("/api/apps", json={"name": "Bad_Name"})
    assert bad.status_code == 422 and bad.get_json()["id"] == "invalid_params"
    made = client.post("/api/apps", json={"name": "hello"})
    assert made.status_code == 201
    body = made.get_json()
    assert body["web_url"] == "http://hello.localhost:8080/"
    assert body["git_url"].endswith("/git/hello.git")
    assert (tmp_path / "repos" / "hello.git" / "HEAD").exists()
    assert client.post("/api/apps", json={"name": "hello"}).status_code == 409
    random = client.post("/api/apps").get_json()["name"]
    assert random and random != "hello"


def test_config_changes_make_releases_and_reject_bad_keys(client: FlaskClient) -> None:
    client.post("/api/apps", json={"name": "hello"})
    response = client.patch("/api/apps/hello/config-vars", json={"GREETING": "hi", "X": "1"})
    assert response.get_json() == {"GREETING": "hi", "X": "1"}
    version = response.headers["Paas-Release"]
    release = client.get(f"/api/apps/hello/releases/v{version}").get_json()
    assert release["description"] == "Set GREETING, X config vars"
    unset = client.patch("/api/apps/hello/config-vars", json={"X": None})
    assert unset.get_json() == {"GREETING": "hi"}
    bad = client.patch("/api/apps/hello/config-vars", json={"1BAD": "x"})
    assert bad.status_code == 422 and "1BAD" in bad.get_json()["message"]
    assert client.get("/api/apps/hello/config-vars").get_json() == {"GREETING": "hi"}


def test_other_users_apps_are_not_found_rather_than_forbidden(client: FlaskClient) -> None:
    client.post("/api/apps", json={"name": "hello"})
    as_ann = {"Authorization": f"Bearer {client.ann_token}"}  # type: ignore[attr-defined]
    response = client.get("/api/apps/hello", headers=as_ann)
    assert response.status_code == 404
    assert response.get_json()["id"] == "not_found"
    assert client.get("/api/apps", headers=as_ann).get_json() == []


def test_formation_refuses_unknown_types_and_bad_quantities(client: FlaskClient) -> None:
    client.post("/api/apps", json={"name": "hello"})
    before_push = client.patch("/api/apps/hello/formation",
                               json={"updates": [{"type": "web", "quantity": 2}]})
    assert before_push.status_code == 422
    assert "push the app first" in before_push.get_json()["message"]
    assert client.patch("/api/apps/hello/formation", json={}).status_code == 422


def test_rollback_without_history_says_so(client: FlaskClient) -> None:
    client.post("/api/apps", json={"name": "hello"})
    response = client.post("/api/apps/hello/releases", json={})
    assert response.status_code == 422
    assert "no release" in response.get_json()["message"]


def test_unknown_api_paths_answer_json(client: FlaskClient) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and response.get_json()["id"] == "not_found"


def test_formation_sizes_are_checked_against_the_table(client: FlaskClient, tmp_path: Path) -> None:
    client.post("/api/apps", json={"name": "hello"})

    store = Store(tmp_path / "paas.db")
    store.create_release(store.app("hello"), description="d", user=None, config={},
                         slug="/s", process_types={"web": "serve"})
    bad = client.patch("/api/apps/hello/formation",
                       json={"updates": [{"type": "web", "size": "huge"}]})
    assert bad.status_code == 422 and "standard-2x" in bad.get_json()["message"]
    good = client.patch("/api/apps/hello/formation",
                        json={"updates": [{"type": "web", "size": "standard-2x"}]})
    assert good.get_json() == [{"type": "web", "quantity": 1, "command": "serve",
                                "size": "standard-2x", "memory_mb": 1024, "pids": 512,
                                "cpu_shares": 2048}]
