"""Domains, maintenance, HTTPS redirect and certificates through the REST API: what the
store keeps, what Redis's copy says for the routers, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from paas import routes, routing
from paas.errors import InvalidInput
from router.tls import ensure_platform_certificate


@pytest.fixture()
def client(make_web) -> FlaskClient:  # noqa: ANN001
    web = make_web("paas.test")
    client = web.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {web.admin_token}"
    client.store = web.store  # type: ignore[attr-defined]
    for name in ("hello", "other"):
        assert client.post("/api/apps", json={"name": name}).status_code == 201
    return client


def make_cert(tmp_path: Path, domain: str) -> tuple[str, str]:
    cert, key = tmp_path / f"{domain}.crt", tmp_path / f"{domain}.key"
    ensure_platform_certificate(cert, key, domain)
    return cert.read_text(), key.read_text()


def test_domains_are_added_listed_published_and_removed(
    client: FlaskClient, r: redis.Redis
) -> None:
    added = client.post("/api/apps/hello/domains", json={"hostname": "WWW.Example.com."})
    assert added.status_code == 201 and added.get_json()["hostname"] == "www.example.com"
    assert client.post("/api/apps/hello/domains",
                       json={"hostname": "*.example.org"}).status_code == 201
    listed = client.get("/api/apps/hello/domains").get_json()
    assert [(d["hostname"], d["kind"]) for d in listed] == [  # sorted by hostname
        ("*.example.org", "custom"), ("hello.paas.test", "platform"),
        ("www.example.com", "custom"),
    ]
    route = routes.load(r, "hello")
    assert route is not None and set(route.domains) == {"www.example.com", "*.example.org"}
    assert route.backends == ()  # no dyno published: the settings alone make the route
    assert client.delete("/api/apps/hello/domains/www.example.com").status_code == 200
    assert routes.load(r, "hello").domains == ("*.example.org",)  # type: ignore[union-attr]
    gone = client.delete("/api/apps/hello/domains/www.example.com")
    assert gone.status_code == 404 and "paas domains" in gone.get_json()["message"]


def test_a_domain_belongs_to_one_app_only(client: FlaskClient) -> None:
    assert client.post("/api/apps/hello/domains",
                       json={"hostname": "www.example.com"}).status_code == 201
    taken = client.post("/api/apps/other/domains", json={"hostname": "www.example.com"})
    assert taken.status_code == 409 and "another app" in taken.get_json()["message"]
    again = client.post("/api/apps/hello/domains", json={"hostname": "www.example.com"})
    assert again.status_code == 409 and "this app" in again.get_json()["message"]


@pytest.mark.parametrize(
    "bad", ["localhost", "example", "-bad.example.com", "a..b.com", "1.2.3.4",
            "paas.test", "x.paas.test", "*.paas.test", "www.*.example.com", "a b.com"],
)
def test_names_that_are_not_custom_domains_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        routing.normalise_domain(bad, "paas.test")


def test_agent_writes_keep_the_settings_and_its_remove_leaves_them(
    client: FlaskClient, r: redis.Redis
) -> None:
    client.post("/api/apps/hello/domains", json={"hostname": "www.example.com"})
    client.patch("/api/apps/hello/routing", json={"maintenance": True})
    # exactly the agent's call: it knows nothing of domains or maintenance
    routes.publish(r, routes.Route(app="hello", backends=(routes.Backend("web.1", "x:1"),),
                                   release=3))
    route = routes.load(r, "hello")
    assert route == routes.Route("hello", (routes.Backend("web.1", "x:1"),), 3,
                                 ("www.example.com",), True, False)
    routes.remove(r, "hello")
    assert routes.load(r, "hello").domains == ("www.example.com",)  # type: ignore[union-attr]


def test_maintenance_and_redirect_are_set_and_checked(client: FlaskClient, r: redis.Redis) -> None:
    assert client.get("/api/apps/hello/routing").get_json() == {
        "maintenance": False, "https_redirect": False}
    on = client.patch("/api/apps/hello/routing", json={"maintenance": True})
    assert on.get_json() == {"maintenance": True, "https_redirect": False}
    redirect = client.patch("/api/apps/hello/routing", json={"https_redirect": True})
    assert redirect.get_json() == {"maintenance": True, "https_redirect": True}
    route = routes.load(r, "hello")
    assert route is not None and route.maintenance and route.https_redirect
    assert client.patch("/api/apps/hello/routing", json={"maintenance": "yes"}).status_code == 422
    assert client.patch("/api/apps/hello/routing", json={}).status_code == 422


def test_certificates_are_checked_stored_and_published(
    client: FlaskClient, r: redis.Redis, tmp_path: Path
) -> None:
    cert, key = make_cert(tmp_path, "example.com")
    _, other_key = make_cert(tmp_path, "example.org")
    mismatched = client.post("/api/apps/hello/sni-endpoints",
                             json={"certificate_chain": cert, "private_key": other_key})
    assert mismatched.status_code == 422 and "does not belong" in mismatched.get_json()["message"]
    junk = client.post("/api/apps/hello/sni-endpoints",
                       json={"certificate_chain": "junk", "private_key": key})
    assert junk.status_code == 422
    assert client.get("/api/apps/hello/sni-endpoints").get_json() == []
    added = client.post("/api/apps/hello/sni-endpoints",
                        json={"certificate_chain": cert, "private_key": key})
    assert added.status_code == 201
    body = added.get_json()
    assert body["domains"][:2] == ["example.com", "*.example.com"] and body["self_signed"]
    assert "private_key" not in body and "PRIVATE" not in str(body)
    assert routes.load_certificate(r, "hello") == routes.Certificate(cert, key)
    assert client.delete("/api/apps/hello/sni-endpoints").status_code == 200
    assert routes.load_certificate(r, "hello") is None
    assert client.delete("/api/apps/hello/sni-endpoints").status_code == 404


def test_redis_copy_is_rebuilt_from_the_store_and_goes_with_the_app(
    client: FlaskClient, r: redis.Redis, tmp_path: Path
) -> None:
    cert, key = make_cert(tmp_path, "example.com")
    client.post("/api/apps/hello/domains", json={"hostname": "www.example.com"})
    client.post("/api/apps/hello/sni-endpoints",
                json={"certificate_chain": cert, "private_key": key})
    r.flushdb()  # Redis restarted: it keeps nothing on disk
    routing.sync_all(client.store, r)  # type: ignore[attr-defined]
    assert routes.load(r, "hello").domains == ("www.example.com",)  # type: ignore[union-attr]
    assert routes.load(r, "other") is None  # nothing set: no entry at all
    assert routes.load_certificate(r, "hello") is not None
    client.delete("/api/apps/hello")
    assert routes.load(r, "hello") is None and routes.load_certificate(r, "hello") is None
