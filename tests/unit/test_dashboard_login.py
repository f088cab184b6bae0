"""Logging in to the dashboard through Flask's test client, with a real store and a real
Redis: failed logins limited per client address and per user name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from paas import keys, ratelimit
from paas.store import Store
from tests.unit.dashboard_support import csrf_of

PASSWORD = "correct horse battery"


@dataclass
class Env:
    app: Flask
    store: Store
    r: redis.Redis
    admin_token: str


@pytest.fixture()
def env(make_web, r: redis.Redis) -> Env:  # noqa: ANN001
    web = make_web()
    for name in ("ann", "bob"):
        web.store.set_password(web.store.create_user(name), PASSWORD)
    return Env(web.app, web.store, r, web.admin_token)


def attempt(client: FlaskClient, address: str, **form: str) -> TestResponse:
    """A login from `address`, as the router reports it (its X-Forwarded-For)."""
    return client.post("/login", data={"csrf_token": csrf_of(client), **form},
                       headers={"X-Forwarded-For": address})


# --- the rate limit --------------------------------------------------------------------
def test_ten_failures_for_a_name_then_429_even_with_the_right_password(env: Env) -> None:
    client = env.app.test_client()
    for n in range(ratelimit.LOGIN_FAILURES):
        # Each from another address: only the name's count reaches the limit.
        wrong = attempt(client, f"198.51.100.{n}", name="ann", password="guess")
        assert wrong.status_code == 401
    refused = attempt(client, "198.51.100.200", name="ann", password=PASSWORD)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= ratelimit.LOGIN_WINDOW
    page = refused.get_data(as_text=True)
    assert "Too many failed logins from this address or for this name" in page
    assert 'id="password-login"' in page  # the form is still there to try later
    assert client.get("/").status_code == 302  # no session came of it
    # Another user, from the same addresses, is not held back.
    assert attempt(client, "198.51.100.200", name="bob", password=PASSWORD).status_code == 302


def test_ten_failures_from_an_address_then_429_for_any_name_or_token(env: Env) -> None:
    client = env.app.test_client()
    for n in range(ratelimit.LOGIN_FAILURES):
        names = ("ann", "bob", f"nobody{n}")
        wrong = attempt(client, "203.0.113.9", name=names[n % 3], password="guess")
        assert wrong.status_code == 401
    for form in ({"name": "ann", "password": PASSWORD}, {"token": env.admin_token}):
        refused = attempt(client, "203.0.113.9", **form)
        assert refused.status_code == 429 and "Retry-After" in refused.headers
    # The same people from another address log in as usual.
    assert attempt(client, "203.0.113.10", name="ann", password=PASSWORD).status_code == 302


def test_token_guesses_count_against_the_address(env: Env) -> None:
    client = env.app.test_client()
    for _ in range(ratelimit.LOGIN_FAILURES):
        assert attempt(client, "192.0.2.1", token="not-a-token").status_code == 401
    assert attempt(client, "192.0.2.1", token=env.admin_token).status_code == 429


def test_successful_logins_are_not_counted(env: Env) -> None:
    client = env.app.test_client()
    for _ in range(ratelimit.LOGIN_FAILURES - 1):
        assert attempt(client, "192.0.2.7", name="ann", password="guess").status_code == 401
    for _ in range(ratelimit.LOGIN_FAILURES + 5):
        assert attempt(env.app.test_client(), "192.0.2.7", name="ann",
                       password=PASSWORD).status_code == 302
    # The successes left the count at nine failures: one more is allowed, then no more.
    assert attempt(client, "192.0.2.7", name="ann", password="guess").status_code == 401
    assert attempt(client, "192.0.2.7", name="ann", password=PASSWORD).status_code == 429


def test_a_clients_own_forwarded_for_does_not_pick_its_address(env: Env) -> None:
    # The router appends the address it saw; an address the client sent comes first and
    # is not the one counted (ProxyFix trusts one hop: the router's).
    client = env.app.test_client()
    for n in range(ratelimit.LOGIN_FAILURES):
        spoofed = f"10.9.9.{n}, 192.0.2.50"
        response = client.post("/login", data={"csrf_token": csrf_of(client), "name": "bob",
                                               "password": "guess"},
                               headers={"X-Forwarded-For": spoofed})
        assert response.status_code == 401
    assert attempt(client, "192.0.2.50", name="ann", password=PASSWORD).status_code == 429


def test_counters_end_and_name_no_one_in_redis(env: Env) -> None:
    attempt(env.app.test_client(), "192.0.2.77", name="ann", password="guess")
    counters = [k.decode() for k in env.r.scan_iter(keys.login_failures("*"))]
    assert len(counters) == 2
    assert not any("ann" in k or "192.0.2.77" in k for k in counters)
    assert all(0 < env.r.ttl(k) <= ratelimit.LOGIN_WINDOW for k in counters)


def test_without_redis_logins_are_not_limited() -> None:
    down = redis.Redis(unix_socket_path="/nonexistent/redis.sock")
    assert ratelimit.hit(down, "paas:test", 60) is None
    attempt_down = ratelimit.LoginAttempt(down, "192.0.2.1", "ann")
    assert attempt_down.start() is None
    attempt_down.succeeded()  # nothing to take back, and no error either
