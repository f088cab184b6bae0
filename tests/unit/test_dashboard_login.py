"""Logging in to the dashboard through Flask's test client, with a real store and a real
Redis: failed logins limited per client address and per user name, and sessions that end
when the credentials they stand on change."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from paas import keys, ratelimit
from paas.store import Store
from tests.unit.dashboard_support import csrf_of, log_in

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


# --- sessions end when their credentials change -----------------------------------------
def api_as(env: Env, token: str) -> FlaskClient:
    client = env.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def ended(client: FlaskClient) -> bool:
    """Whether the client's session no longer lets it in: pages send it to log in, and
    its forms are refused (their CSRF token went with the session)."""
    page = client.get("/")
    return page.status_code == 302 and page.headers["Location"].startswith("/login")


def test_a_password_change_ends_every_session_even_a_copied_cookie(env: Env) -> None:
    ann = log_in(env.app, name="ann", password=PASSWORD)
    csrf = csrf_of(ann, "/")
    stolen = env.app.test_client()
    stolen.set_cookie("paas_session", ann.get_cookie("paas_session").value)  # type: ignore[union-attr]
    assert stolen.get("/").status_code == 200  # a copied cookie works, until...
    token = env.store.create_token(env.store.user_by_name("ann").id)  # type: ignore[union-attr]
    changed = api_as(env, token).patch("/api/account", json={
        "password": "a brand new password", "current_password": PASSWORD})
    assert changed.status_code == 200
    assert ended(ann) and ended(stolen)
    assert "Your session has ended" in ann.get("/login").get_data(as_text=True)
    assert ann.post("/apps", data={"name": "after", "csrf_token": csrf}).status_code == 400
    assert env.store.find_app("after") is None
    # The new password opens a new session; the old one stays closed.
    assert log_in(env.app, name="ann", password="a brand new password").get("/").status_code == 200
    assert ended(stolen)


def test_a_token_session_ends_when_the_token_is_revoked_or_the_password_changes(
    env: Env
) -> None:
    user = env.store.user_by_name("bob")
    assert user is not None
    kept = env.store.create_token(user.id)
    record, revoked = env.store.create_token_record(user, "for the dashboard")
    session_one = log_in(env.app, token=revoked)
    session_two = log_in(env.app, token=kept)
    assert api_as(env, kept).delete(f"/api/account/tokens/{record.id}").status_code == 200
    assert ended(session_one)
    assert session_two.get("/").status_code == 200  # its own token still stands
    env.store.set_password(user, "bob's new password")
    assert ended(session_two)


def test_a_removed_user_is_logged_out_and_a_new_one_of_that_name_is_not_them(
    env: Env
) -> None:
    ann = log_in(env.app, name="ann", password=PASSWORD)
    cookie = ann.get_cookie("paas_session").value  # type: ignore[union-attr]
    # No API or CLI removes users yet: the row goes the way an admin's SQL would take it.
    with sqlite3.connect(env.store.path) as db:
        db.execute("DELETE FROM users WHERE name = 'ann'")
    assert ended(ann)
    env.store.set_password(env.store.create_user("ann"), PASSWORD)
    replayed = env.app.test_client()
    replayed.set_cookie("paas_session", cookie)
    assert ended(replayed)


def test_a_session_without_a_stamp_is_not_accepted(env: Env) -> None:
    # As a cookie made before sessions carried a stamp would be.
    client = env.app.test_client()
    with client.session_transaction() as session:
        session["user"] = "ann"
        session["csrf"] = "x"
    assert ended(client)


def test_an_unchanged_session_carries_on(env: Env) -> None:
    ann = log_in(env.app, name="ann", password=PASSWORD)
    env.store.set_password(env.store.user_by_name("bob"), "someone else's change")  # type: ignore[arg-type]
    env.store.create_token(env.store.user_by_name("ann").id)  # type: ignore[union-attr]
    for _ in range(3):
        assert ann.get("/").status_code == 200
