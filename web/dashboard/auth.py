"""Logging in and out of the dashboard, the session's user, and CSRF protection.

A user logs in with their name and password (a stored scrypt hash) or with one of
their API tokens, so the admin, who starts with only a token, can log in too.
The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure where the
browser keeps it); every POST must carry the session's CSRF token. A session keeps a
stamp of the credentials it stands on and ends when they change; failed logins are
limited per client address and per user name (paas.ratelimit).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup, escape

from paas import ratelimit
from paas.store import User
from web.dashboard import dashboard, rds, store

#: Endpoints reachable without a session.
PUBLIC = {"dashboard.login", "dashboard.static"}
#: Endpoints a script reads (streams, JSON): they answer 401 instead of redirecting.
MACHINE = {"dashboard.log_stream", "dashboard.build_stream", "dashboard.metrics_data"}
def csrf_token() -> str:
    """The session's CSRF token, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def form_guard() -> Markup:
    """The hidden fields every form carries: the CSRF token and the page to come back to."""
    return Markup(
        f'<input type="hidden" name="csrf_token" value="{escape(csrf_token())}">'
        f'<input type="hidden" name="back" value="{escape(request.full_path.rstrip("?"))}">'
    )


@dashboard.app_template_global()
def dashboard_form_guard() -> Markup:
    return form_guard()


def local_path(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


@dashboard.before_request
def require_session_and_csrf() -> ResponseReturnValue | None:
    g.user = None
    name = session.get("user")
    if name:
        g.user = session_user(name)
        if g.user is None:
            session.clear()
            flash("Your session has ended: your password or the token you logged in with "
                  "changed, or your account was removed. Log in again.", "error")
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            return render_template(
                "dashboard/error.html", status=400,
                message="This form has expired or did not come from this dashboard. "
                        "Reload the page and try again.",
            ), 400
    if g.user is None and request.endpoint not in PUBLIC:
        if request.endpoint in MACHINE:
            return "log in first\n", 401, {"Content-Type": "text/plain"}
        return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
    return None


def session_user(name: str) -> User | None:
    """The session's user, unless it stands on credentials that changed since it began:
    the user was removed, their password changed (or was set), or the API token the
    session was opened with was revoked. A stolen cookie ends with a password reset."""
    stamp = store().session_stamp(name, session.get("token_id"))
    if stamp is None or not hmac.compare_digest(stamp, session.get("stamp", "")):
        return None
    return store().user_by_name(name)


@dashboard.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    next_path = local_path(request.values.get("next"))
    if request.method == "GET":
        if g.user is not None:
            return redirect(next_path)
        csrf_token()
        return render_template("dashboard/login.html", next=next_path)
    token = request.form.get("token", "").strip()
    name = "" if token else request.form.get("name", "").strip()
    # The router is this process's only client and sets the address (ProxyFix reads it).
    attempt = ratelimit.LoginAttempt(rds(), request.remote_addr or "unknown", name)
    wait = attempt.start()
    if wait is not None:
        flash(f"Too many failed logins from this address or for this name: try again in "
              f"{_duration(wait)}.", "error")
        return (render_template("dashboard/login.html", next=next_path), 429,
                {"Retry-After": str(wait)})
    user, token_id = None, None
    if token:
        token_id = store().token_id(token)
        user = store().user_for_token(token) if token_id is not None else None
    elif name:
        user = store().user_for_password(name, request.form.get("password", ""))
    if user is None:
        flash("Those credentials did not work: check the name and password, or paste an API "
              "token (the admin's is in $PAAS_HOME/admin.token).", "error")
        return render_template("dashboard/login.html", next=next_path), 401
    attempt.succeeded()
    # A fresh session: nothing from before the login (a planted CSRF token) carries over.
    session.clear()
    session.permanent = True
    session["user"] = user.name
    if token_id is not None:
        session["token_id"] = token_id
    session["stamp"] = store().session_stamp(user.name, token_id)
    csrf_token()
    return redirect(next_path)


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@dashboard.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    flash("You are logged out.", "ok")
    return redirect(url_for("dashboard.login"))
