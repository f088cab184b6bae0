"""`/api/account/keys` through Flask's test client, with a real store and a real Redis."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from flask.testing import FlaskClient

from paas.config import Settings
from paas.store import Store
from web import create_app


@pytest.fixture()
def client(tmp_path: Path, redis_url: str, r: redis.Redis) -> Iterator[FlaskClient]:
    s = Settings(home=tmp_path, domain="localhost", http_port=8080,
                 redis_url_override=redis_url, runtime="process", ssh_port=2222)
    store = Store(s.db_path)
    store.migrate()
    ann = store.create_user("ann")
    bob = store.create_user("bob")
    app = create_app(s)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {store.create_token(ann.id)}"
    client.bob = {"Authorization": f"Bearer {store.create_token(bob.id)}"}  # type: ignore[attr-defined]
    yield client
    app.extensions["paas_redis"].close()
    app.extensions["paas_store"].close()
    store.close()


def public_key(tmp_path: Path, name: str = "id_ed25519") -> str:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ann@laptop",
                    "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text()


def test_add_list_and_remove_a_key_by_fingerprint(client: FlaskClient, tmp_path: Path) -> None:
    text = public_key(tmp_path)
    added = client.post("/api/account/keys", json={"public_key": text})
    assert added.status_code == 201, added.get_json()
    key = added.get_json()
    assert key["fingerprint"].startswith("SHA256:") and key["comment"] == "ann@laptop"
    assert key["public_key"] == text.strip()
    assert client.get("/api/account/keys").get_json() == [key]
    # A fingerprint is base64: `/` and `+` must survive the trip through the path.
    path = "/api/account/keys/" + quote(key["fingerprint"], safe="")
    assert client.get(path).get_json() == key
    assert client.delete(path).get_json() == key
    assert client.get("/api/account/keys").get_json() == []


def test_remove_by_id_and_only_your_own(client: FlaskClient, tmp_path: Path) -> None:
    key = client.post("/api/account/keys", json={"public_key": public_key(tmp_path)}).get_json()
    theirs = client.delete(f"/api/account/keys/{key['id']}", headers=client.bob)  # type: ignore[attr-defined]
    assert theirs.status_code == 404 and theirs.get_json()["id"] == "not_found"
    assert client.delete(f"/api/account/keys/{key['id']}").status_code == 200


def test_a_key_on_another_account_is_a_conflict(client: FlaskClient, tmp_path: Path) -> None:
    text = public_key(tmp_path)
    assert client.post("/api/account/keys", json={"public_key": text}).status_code == 201
    again = client.post("/api/account/keys", json={"public_key": text})
    assert again.status_code == 409 and "already on your account" in again.get_json()["message"]
    other = client.post("/api/account/keys", json={"public_key": text},
                        headers=client.bob)  # type: ignore[attr-defined]
    assert other.status_code == 409
    assert "already on another account" in other.get_json()["message"]
    assert client.get("/api/account/keys", headers=client.bob).get_json() == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", [
    {}, {"public_key": 42}, {"public_key": "ssh-dss AAAA"}, {"public_key": "hello"},
])
def test_bad_keys_are_422_and_nothing_is_stored(client: FlaskClient, body: dict) -> None:
    response = client.post("/api/account/keys", json=body)
    assert response.status_code == 422 and response.get_json()["id"] == "invalid_params"
    assert client.get("/api/account/keys").get_json() == []


def test_apps_name_their_ssh_remote(client: FlaskClient) -> None:
    client.post("/api/apps", json={"name": "hello"})
    app = client.get("/api/apps/hello").get_json()
    assert app["ssh_git_url"] == "ssh://git@localhost:2222/hello.git"


def test_health_waits_for_the_ssh_server_when_it_is_on(client: FlaskClient) -> None:
    body = client.get("/api/health").get_json()
    assert body["components"]["ssh"] == "down"
