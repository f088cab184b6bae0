"""The dashboard through Flask's test client, with a real store and a real Redis:
logging in, CSRF refusal, secure headers, and forms that change an app."""

from __future__ import annotations

import hashlib
import re
import sqlite3

import pytest
import redis
from flask.testing import FlaskClient

from paas import logs
from paas.build import output
from paas.store_accounts import verify_password
from tests.unit.dashboard_support import csrf_of, log_in
from web.dashboard.auth import local_path
from web.dashboard.metrics import parse_router_line, summarize
from web.dashboard.streams import line_matches

ROUTER_LINE = ('at=info method=GET path="/" host=hello.localhost request_id=abc fwd="1.2.3.4" '
               "dyno=web.1 connect=0ms service={ms}ms status={status} bytes=5 protocol=http")


def scrypt_hash(password: str, salt: bytes = b"0123456789abcdef") -> str:
    n, r, p = 2**14, 8, 1
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


@pytest.fixture()
def env(make_web, r: redis.Redis) -> dict:  # noqa: ANN001
    web = make_web()
    ann = web.store.create_user("ann")
    return {"app": web.app, "store": web.store, "token": web.admin_token,
            "ann_token": web.store.create_token(ann.id), "r": r, "db": web.settings.db_path}


def logged_in(env: dict, token_key: str = "token") -> FlaskClient:
    return log_in(env["app"], token=env[token_key])


def test_pages_redirect_to_login_and_back(env: dict) -> None:
    client = env["app"].test_client()
    response = client.get("/apps/hello/settings")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/apps/hello/settings")
    assert client.get("/apps/hello/logs/stream").status_code == 401
    login = client.post("/login", data={"csrf_token": csrf_of(client), "token": env["token"],
                                        "next": "/apps/hello/settings"})
    assert login.headers["Location"] == "/apps/hello/settings"


def test_a_wrong_token_or_password_is_refused(env: dict) -> None:
    client = env["app"].test_client()
    csrf = csrf_of(client)
    assert client.post("/login", data={"csrf_token": csrf, "token": "nope"}).status_code == 401
    refused = client.post("/login", data={"csrf_token": csrf, "name": "admin", "password": "x"})
    assert refused.status_code == 401
    assert client.get("/").status_code == 302


def test_password_login_accepts_a_stored_scrypt_hash(env: dict) -> None:
    # Written straight to the column: any scrypt hash in the stored format is accepted.
    with sqlite3.connect(env["db"]) as db:
        db.execute("UPDATE users SET password_hash = ? WHERE name = 'ann'",
                   (scrypt_hash("correct horse"),))
    client = env["app"].test_client()
    csrf = csrf_of(client)
    wrong = client.post("/login", data={"csrf_token": csrf, "name": "ann", "password": "nope"})
    assert wrong.status_code == 401
    right = client.post("/login", data={"csrf_token": csrf, "name": "ann",
                                        "password": "correct horse"})
    assert right.status_code == 302
    assert "ann" in client.get("/").get_data(as_text=True)


def test_verify_password_rejects_junk_and_greedy_hashes() -> None:
    good = scrypt_hash("pw")
    assert verify_password("pw", good)
    assert not verify_password("pw2", good)
    assert not verify_password("pw", None)
    assert not verify_password("pw", "pbkdf2$1$2$3$00$00")
    assert not verify_password("pw", "scrypt$x$8$1$00$00")
    # A hash that would need gigabytes per attempt is refused rather than computed.
    assert not verify_password("pw", good.replace("$16384$", f"${2**24}$"))


def test_next_only_goes_to_local_paths() -> None:
    assert local_path("/apps/x") == "/apps/x"
    for outside in ("https://evil.example/", "//evil.example/", "/\\evil.example", None, ""):
        assert local_path(outside) == "/"


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(env: dict) -> None:
    client = logged_in(env)
    assert client.post("/apps", data={"name": "sneaky"}).status_code == 400
    assert client.post("/apps", data={"name": "sneaky", "csrf_token": "forged"}).status_code == 400
    assert env["store"].find_app("sneaky") is None
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still logged in


def test_login_itself_needs_the_csrf_token(env: dict) -> None:
    client = env["app"].test_client()
    assert client.post("/login", data={"token": env["token"]}).status_code == 400
    assert client.get("/").status_code == 302


def test_pages_carry_secure_headers_and_cookie_flags(env: dict) -> None:
    client = env["app"].test_client()
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    # Over plain http on a public name the browser would drop a Secure cookie.
    remote = env["app"].test_client().get("/login", base_url="http://paas.example.org")
    assert "Secure" not in remote.headers["Set-Cookie"]
    tls = env["app"].test_client().get("/login", base_url="https://paas.example.org")
    assert "Secure" in tls.headers["Set-Cookie"]
    # The API is untouched by the dashboard's session.
    assert "Set-Cookie" not in client.get("/api/health").headers


def test_no_page_uses_inline_script(env: dict) -> None:
    client = logged_in(env)
    client.post("/apps", data={"name": "hello", "csrf_token": csrf_of(client, "/")})
    for path in ("/", "/apps/hello", "/apps/hello/activity", "/apps/hello/resources",
                 "/apps/hello/settings", "/apps/hello/access", "/apps/hello/logs",
                 "/apps/hello/metrics"):
        page = client.get(path)
        assert page.status_code == 200, path
        html = page.get_data(as_text=True)
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
        assert " on" + "click=" not in html and "style=" not in html, path


def test_forms_change_the_app_like_the_api(env: dict) -> None:
    client = logged_in(env)
    csrf = csrf_of(client, "/")
    made = client.post("/apps", data={"name": "hello", "csrf_token": csrf})
    assert made.headers["Location"] == "/apps/hello"
    set_var = client.post("/apps/hello/config", data={
        "key": "GREETING", "value": "hi there", "csrf_token": csrf,
        "back": "/apps/hello/settings"})
    assert set_var.headers["Location"] == "/apps/hello/settings"
    app = env["store"].app("hello")
    assert env["store"].config_vars(app) == {"GREETING": "hi there"}
    assert env["store"].current_release(app).description == "Set GREETING config vars"
    page = client.get("/apps/hello/settings").get_data(as_text=True)
    assert "hi there" in page and "Set GREETING; deploying v1" in page
    bad = client.post("/apps/hello/config", data={"key": "1BAD", "value": "x",
                                                  "csrf_token": csrf, "back": "/apps/hello"})
    assert bad.status_code == 302
    assert "1BAD" in client.get("/apps/hello").get_data(as_text=True)
    client.post("/apps/hello/config", data={"key": "GREETING", "unset": "1", "csrf_token": csrf})
    assert env["store"].config_vars(app) == {}
    # No process types before the first push: scaling explains why it cannot.
    client.post("/apps/hello/formation", data={"type": "web", "quantity": "2",
                                               "csrf_token": csrf, "back": "/apps/hello/resources"})
    assert "push the app first" in client.get("/apps/hello/resources").get_data(as_text=True)


def test_delete_needs_the_typed_name(env: dict) -> None:
    client = logged_in(env)
    csrf = csrf_of(client, "/")
    client.post("/apps", data={"name": "doomed", "csrf_token": csrf})
    client.post("/apps/doomed/delete", data={"confirm": "doome", "csrf_token": csrf})
    assert env["store"].find_app("doomed") is not None
    gone = client.post("/apps/doomed/delete", data={"confirm": "doomed", "csrf_token": csrf})
    assert gone.headers["Location"] == "/"
    assert env["store"].find_app("doomed") is None


def test_other_users_apps_are_not_found(env: dict) -> None:
    admin = logged_in(env)
    admin.post("/apps", data={"name": "private", "csrf_token": csrf_of(admin, "/")})
    ann = logged_in(env, "ann_token")
    assert ann.get("/apps/private").status_code == 404
    assert ann.get("/apps/private/logs/stream").status_code == 404
    assert "private" not in ann.get("/").get_data(as_text=True)


def test_logout_ends_the_session(env: dict) -> None:
    client = logged_in(env)
    response = client.post("/logout", data={"csrf_token": csrf_of(client, "/")})
    assert response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_the_log_stream_sends_new_lines_as_events(env: dict) -> None:
    client = logged_in(env)
    client.post("/apps", data={"name": "hello", "csrf_token": csrf_of(client, "/")})
    r = env["r"]
    logs.append(r, "hello", "app", "web.1", "before")
    after = logs.recent(r, "hello", 1)[-1].id
    logs.append(r, "hello", "app", "worker.1", "not for web")
    logs.append(r, "hello", "app", "web.1", "line one\nline two")
    response = client.get(f"/apps/hello/logs/stream?type=web&after={after}", buffered=False)
    assert response.mimetype == "text/event-stream"
    chunks = response.response
    assert next(chunks) == b"retry: 2000\n\n"
    event = next(chunks).decode()
    response.close()
    assert event.startswith("id: ")
    assert "app[web.1]: line one\ndata: line two\n\n" in event
    assert "before" not in event and "not for web" not in event


def test_line_filters() -> None:
    web = logs.LogLine("1-0", 0.0, "app", "web.2", "x")
    router = logs.LogLine("1-1", 0.0, "router", "router", "x")
    assert line_matches(web, "") and line_matches(web, "web")
    assert not line_matches(web, "worker") and not line_matches(web, "router")
    assert line_matches(router, "router") and not line_matches(router, "web")


def test_metrics_from_router_lines() -> None:
    now = 1_800_000_000.0
    lines = [(now - 30, ROUTER_LINE.format(ms=10, status=200)),
             (now - 20, ROUTER_LINE.format(ms=30, status=200)),
             (now - 10, ROUTER_LINE.format(ms=500, status=503)),
             (now - 5, 'at=error code=H12 desc="Request timeout" method=GET path="/" '
                       "dyno=web.1 connect=0ms service=30000ms status=503 bytes=0"),
             (now - 4000, ROUTER_LINE.format(ms=1, status=200)),
             (now, "starting code=one on port 5000")]
    hits = [hit for ts, line in lines if (hit := parse_router_line(ts, line))]
    assert len(hits) == 5
    data = summarize(hits, now, minutes=30)
    assert data["totals"]["requests"] == 4
    assert data["totals"]["2xx"] == 2 and data["totals"]["5xx"] == 2
    assert data["totals"]["errors"] == {"H12": 1}
    assert data["totals"]["p50"] == 500
    assert len(data["buckets"]) == 30
    assert sum(b["requests"] for b in data["buckets"]) == 4
    assert data["buckets"][0]["p50"] is None


def test_metrics_page_and_json_count_router_lines(env: dict) -> None:
    client = logged_in(env)
    client.post("/apps", data={"name": "hello", "csrf_token": csrf_of(client, "/")})
    logs.append(env["r"], "hello", "router", "router", ROUTER_LINE.format(ms=12, status=200))
    data = client.get("/apps/hello/metrics.json").get_json()
    assert data["totals"]["requests"] == 1 and data["totals"]["p50"] == 12
    assert data["memory"] == []
    assert "12 ms" in client.get("/apps/hello/metrics").get_data(as_text=True)


def test_a_build_in_progress_streams_its_output_then_its_end(env: dict) -> None:
    client = logged_in(env)
    client.post("/apps", data={"name": "hello", "csrf_token": csrf_of(client, "/")})
    store, r = env["store"], env["r"]
    build = store.create_build(store.app("hello"), None, "a" * 40, "refs/heads/main")
    store.set_build_status(build.id, "building")
    writer = output.BuildOutput(r, build.id)
    writer.line("-----> Python app detected")
    page = client.get(f"/apps/hello/builds/{build.id}").get_data(as_text=True)
    assert "Python app detected" in page and 'data-skip="1"' in page
    writer.line("-----> Installing requirements")
    writer.end("succeeded")
    response = client.get(f"/apps/hello/builds/{build.id}/stream", buffered=False)
    body = b"".join(response.response).decode()
    assert body.index("Python app detected") < body.index("Installing requirements")
    assert body.endswith('event: end\ndata: {"status": "succeeded", "reason": ""}\n\n')


def test_a_built_release_still_deploying_shows_the_streamed_output(env: dict) -> None:
    client = logged_in(env)
    client.post("/apps", data={"name": "hello", "csrf_token": csrf_of(client, "/")})
    store = env["store"]
    build = store.create_build(store.app("hello"), None, "b" * 40, "refs/heads/main")
    # The build itself is done; its release deploys before the output reaches the store.
    store.set_build_status(build.id, "succeeded")
    output.BuildOutput(env["r"], build.id).line("-----> Launching v1")
    page = client.get(f"/apps/hello/builds/{build.id}").get_data(as_text=True)
    assert "Launching v1" in page
    assert f'data-stream="/apps/hello/builds/{build.id}/stream"' in page
