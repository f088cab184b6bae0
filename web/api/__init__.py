"""The REST API blueprint: bearer-token auth, JSON errors, and the shared lookups.

Shaped like the Heroku Platform API (see docs/api.md). Every error a user can
meet is a PaasError and leaves as `{"id": ..., "message": ...}` with its status.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from paas.config import Settings
from paas.errors import NotFound, PaasError, Unauthorized
from paas.store import App, Store

api = Blueprint("api", __name__, url_prefix="/api")

PUBLIC_ENDPOINTS = {"api.health"}


def store() -> Store:
    return current_app.extensions["paas_store"]


def rds() -> redis.Redis:
    return current_app.extensions["paas_redis"]


def settings() -> Settings:
    return current_app.config["PAAS_SETTINGS"]


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


def app_for_request(name: str) -> App:
    """The named app, if the caller may reach it; otherwise 404 (never revealing it exists)."""
    app = store().find_app(name)
    if app is None or not store().can_access(g.user, app):
        raise NotFound(f"no app named {name!r}; `paas apps` lists yours")
    return app


@api.before_request
def authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    user = store().user_for_token(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise Unauthorized(
            "missing or invalid API token: send `Authorization: Bearer TOKEN` "
            "(`paas login` stores one)"
        )
    g.user = user


@api.errorhandler(PaasError)
def paas_error(exc: PaasError) -> ResponseReturnValue:
    return jsonify(exc.to_dict()), exc.status


@api.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> ResponseReturnValue:
    # Registered app-wide because a path that matches no route never reaches the blueprint.
    if not request.path.startswith("/api/"):
        return exc
    ids = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
    message = exc.description or exc.name
    if exc.code == 404:
        message = f"no such API path {request.path}; see docs/api.md"
    return jsonify({"id": ids.get(exc.code or 500, "error"), "message": message}), exc.code


from web.api import (  # noqa: E402, F401 - registers the routes
    apps,
    buildpacks,
    deploys,
    health,
    images,
    keys,
    routing,
    run,
)
