"""The REST API blueprint: bearer-token auth, JSON errors, and the shared lookups.

Shaped like the Heroku Platform API (see docs/api.md). Every error a user can
meet is a PaasError and leaves as `{"id": ..., "message": ...}` with its status.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import redis
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from paas import audit as audit_log
from paas import keys, permissions, ratelimit
from paas.config import Settings
from paas.errors import PaasError, PayloadTooLarge, RateLimited, Unauthorized
from paas.store import App, Store, User
from web.api import paging, schema

api = Blueprint("api", __name__, url_prefix="/api")

PUBLIC_ENDPOINTS = {"api.health", "api.openapi_document"}
#: Endpoints that also take a user name and password (HTTP basic auth): logging in.
PASSWORD_ENDPOINTS = {"api.create_token"}


def store() -> Store:
    return current_app.extensions["paas_store"]


def rds() -> redis.Redis:
    return current_app.extensions["paas_redis"]


def settings() -> Settings:
    return current_app.config["PAAS_SETTINGS"]


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


def app_for_request(name: str, action: str | None = None) -> App:
    """The named app, if the caller may do `action` to it (paas.permissions): otherwise
    404 when they cannot see it (never revealing it exists), 403 when they can.

    Without an action a read (GET) needs `view` and anything else `owner`, so an
    endpoint that forgets to say fails closed."""
    if action is None:
        action = "read" if request.method in ("GET", "HEAD") else "manage"
    app = permissions.authorize(store(), g.user, name, action)
    pending = g.pop("pending_body", None)
    if pending is not None:
        schema.validate_body(pending)
    g.audit_app = (app, action)
    return app


#: Bytes a JSON request body may have; uploads (UPLOAD_ENDPOINTS) may have more.
MAX_BODY = 1024 * 1024
UPLOAD_ENDPOINTS: set[str] = set()
#: API requests a token may make per RATE_WINDOW seconds (PAAS_API_RATE; 0: no limit).
DEFAULT_RATE = 1200
RATE_WINDOW = 60


@api.before_request
def limit_body() -> None:
    if request.endpoint in UPLOAD_ENDPOINTS:
        return
    # Also caps a chunked body, which has no Content-Length to check up front.
    request.max_content_length = MAX_BODY
    if (request.content_length or 0) > MAX_BODY:
        raise PayloadTooLarge(f"the request body is over {MAX_BODY // 1024} KiB")


@api.before_request
def authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    rate_limit(scheme.lower(), credentials.strip())
    user = None
    if scheme.lower() == "bearer":
        user = store().user_for_api_token(credentials.strip())
    elif scheme.lower() == "basic" and request.endpoint in PASSWORD_ENDPOINTS:
        user = _password_user(credentials.strip())
    if user is None:
        raise Unauthorized(
            "missing or invalid API token: send `Authorization: Bearer TOKEN` "
            "(`paas login` stores one)"
        )
    g.user = user


def rate_limit(scheme: str, credentials: str) -> None:
    """At most PAAS_API_RATE requests a minute per token (per user name when logging in
    with a password, so guessing passwords is as slow), counted in Redis."""
    limit = int(os.environ.get("PAAS_API_RATE") or DEFAULT_RATE)
    if limit <= 0 or not credentials:
        return
    if scheme == "basic":
        try:
            identity = "login:" + base64.b64decode(credentials).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return
    else:
        identity = ratelimit.digest(credentials)
    # Without Redis nothing is counted: the API keeps answering what it can.
    count = ratelimit.hit(rds(), keys.api_rate(ratelimit.digest(identity)), RATE_WINDOW)
    if count is not None and count.value > limit:
        raise RateLimited(f"more than {limit} requests a minute with this token; "
                          f"try again in {count.retry_after} s", count.retry_after)


def _password_user(credentials: str) -> User | None:
    """The user of HTTP basic `name:password`; only the login endpoint accepts it, so a
    password never works where a token is expected (git, scripts)."""
    try:
        name, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if not name or not password:
        return None
    # Failed logins count as the dashboard's do, on the same counters: a password guessed
    # here is no faster to find than one guessed on the login form.
    attempt = ratelimit.LoginAttempt(rds(), request.remote_addr or "unknown", name)
    wait = attempt.start()
    if wait is not None:
        raise RateLimited(f"too many failed logins from this address or for {name}; "
                          f"try again in {wait} s", wait)
    user = store().user_for_password(name, password)
    if user is None:
        raise Unauthorized("wrong user name or password")
    attempt.succeeded()
    return user


@api.after_request
def audit(response: Response) -> Response:
    """Every change to an app that succeeded goes to its audit log, whoever made it."""
    target = g.get("audit_app")
    if target is None or request.method in ("GET", "HEAD") or response.status_code >= 400:
        return response
    app, action = target
    body = request.get_json(silent=True) if (request.content_length or 0) < 4096 else None
    endpoint = (request.endpoint or "").removeprefix("api.")
    audit_log.record(store(), app.name, g.user, endpoint, f"{request.method} {request.path}",
                     body, permission=action, release=response.headers.get("Paas-Release"))
    return response


@api.after_request
def etag(response: Response) -> Response:
    return paging.conditional(response)


@api.errorhandler(PaasError)
def paas_error(exc: PaasError) -> ResponseReturnValue:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
    return jsonify(exc.to_dict()), exc.status, headers


@api.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of this API, made from its code."""
    document = current_app.extensions.get("paas_openapi")
    if document is None:
        document = current_app.extensions["paas_openapi"] = schema.openapi(current_app)
    return jsonify(document)


@api.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> ResponseReturnValue:
    # Registered app-wide because a path that matches no route never reaches the blueprint.
    if not request.path.startswith("/api/"):
        return exc
    ids = {404: "not_found", 405: "method_not_allowed", 400: "bad_request",
           413: "payload_too_large"}
    message = exc.description or exc.name
    if exc.code == 404:
        message = f"no such API path {request.path}; see docs/api.md"
    return jsonify({"id": ids.get(exc.code or 500, "error"), "message": message}), exc.code


from web.api import (  # noqa: E402, F401 - registers the routes
    accounts,
    apps,
    buildpacks,
    builds,
    deploys,
    health,
    images,
    routing,
    run,
    ssh_keys,
)
