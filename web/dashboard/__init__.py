"""The web dashboard: server-rendered pages at /, with a little plain JS for live views.

Every page needs a logged-in session (see `auth.py`); every form carries the
session's CSRF token; every response carries a strict Content-Security-Policy.
Changes go through the same functions the REST API calls (`paas.actions`,
`paas.releases`, `paas.apps`), so a click deploys exactly like the CLI.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import redis
from flask import Blueprint, Flask, Response, abort, current_app, g, request
from flask.sessions import SecureCookieSessionInterface

from paas import audit as audit_log
from paas import permissions
from paas.config import Settings
from paas.errors import Forbidden, NotFound
from paas.store import App, Store

dashboard = Blueprint(
    "dashboard", __name__, template_folder="templates", static_folder="static",
    static_url_path="/dashboard/static",
)

#: Scripts and styles come only from our own static files: no inline script can run.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


def store() -> Store:
    return current_app.extensions["paas_store"]


def rds() -> redis.Redis:
    return current_app.extensions["paas_redis"]


def settings() -> Settings:
    return current_app.config["PAAS_SETTINGS"]


def _is_local_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("localhost", "127.0.0.1", "[::1]") or name.endswith(".localhost")


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the browser will keep it so.

    Browsers keep Secure cookies over https and on localhost (a secure context) only; a
    platform reached over plain http on another name would otherwise never stay logged in.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or _is_local_host(request.host)


def secret_key(s: Settings) -> bytes:
    """The key that signs session cookies, made once and shared by every web worker."""
    path = Path(s.home) / "dashboard.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".dashboard.secret.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            # A link fails if another worker got there first: both then read its key.
            os.link(scratch, path)
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
    return bytes.fromhex(path.read_text().strip())


def init_dashboard(app: Flask) -> None:
    """Register the dashboard on the platform's Flask app, with its session settings."""
    app.secret_key = secret_key(app.config["PAAS_SETTINGS"])
    app.session_interface = DashboardSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="paas_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.register_blueprint(dashboard)


@dashboard.after_request
def secure_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "dashboard.static":
        # Pages show config vars and logs: no copy may outlive the session in a cache.
        response.headers["Cache-Control"] = "no-store"
    return response


def app_for_user(name: str, action: str = "read") -> App:
    """The named app if the logged-in user may do `action` to it (paas.permissions): 404
    when they cannot see it (never saying which), 403 naming the role needed when they
    can see it but not do this."""
    try:
        return permissions.authorize(store(), g.user, name, action)
    except NotFound:
        abort(404)
    except Forbidden as exc:
        abort(403, exc.message)


def may(app: App, action: str) -> bool:
    """Whether the logged-in user may do `action` to `app`: a page offers only the forms
    that would work (the form's own view checks again)."""
    return permissions.allows(store(), g.user, app, action)


def audit(app: App, action: str, body: object = None, *, permission: str = "",
          release: int | None = None) -> None:
    """Write the change just made to the app's audit log as the REST API would for the same
    change: `action` is the API endpoint's name and `body` the API's body for it."""
    audit_log.record(store(), app.name, g.user, action, f"{request.method} {request.path}",
                     body, permission=permission,
                     release=None if release is None else str(release))


from web.dashboard import (  # noqa: E402, F401 - registers the routes
    auth,
    collaborators,
    streams,
    views,
)
