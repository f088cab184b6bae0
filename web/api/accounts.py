"""API resources of accounts: the caller's account and API tokens, users (admins),
an app's collaborators, its transfer and its audit log."""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import g, jsonify, request
from flask.typing import ResponseReturnValue

from paas import access
from paas.errors import Forbidden, InvalidInput
from paas.store import App
from paas.store_accounts import AuditEntry, TokenInfo
from web.api import api, app_for_request, iso, store
from web.api import models as m
from web.api.apps import _body
from web.api.paging import paginate, paginate_rows
from web.api.schema import spec

#: A user name: lowercase letters, digits and `._@-`, so an email address is one too.
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt hashes anything, but a megabyte password is an attack
#: The fields each list's `Range` may sort by (web/api/paging.py); the first is its default.
TOKEN_RANGES = ("id",)
USER_RANGES = ("name",)


def _string(body: dict, key: str, *, required: bool = True, default: str = "") -> str:
    value = body.get(key, None if required else default)
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string" + ("" if not required else ", and is needed"))
    return value


def _only(body: dict, *allowed: str) -> dict:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; this takes " + ", ".join(allowed))
    return body


def _check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def token_json(token: TokenInfo) -> dict:
    return {"id": token.id, "description": token.description,
            "created_at": iso(token.created_at), "last_used_at": iso(token.last_used_at)}


def audit_json(entry: AuditEntry) -> dict:
    return {"id": entry.id, "app": entry.app, "user": entry.user, "action": entry.action,
            "detail": entry.detail, "created_at": iso(entry.created_at)}


# --- the caller's account -----------------------------------------------------------
@api.get("/account")
@spec(response=m.Account)
def get_account() -> ResponseReturnValue:
    return jsonify({"name": g.user.name, "is_admin": g.user.is_admin})


@api.patch("/account")
@spec(body=m.AccountPatch, response=m.Account)
def update_account() -> ResponseReturnValue:
    """Change one's password: {"password": new, "current_password": old}."""
    body = _only(_body(), "password", "current_password")
    password = _check_password(_string(body, "password"))
    if store().user_for_password(g.user.name, _string(body, "current_password")) is None:
        raise Forbidden("current_password is not your password")
    store().set_password(g.user, password)
    return jsonify({"name": g.user.name, "is_admin": g.user.is_admin})


@api.get("/account/tokens")
@spec(response=list[m.Token], ranges=TOKEN_RANGES)
def list_tokens() -> ResponseReturnValue:
    return paginate([token_json(t) for t in store().tokens(g.user)], TOKEN_RANGES)


@api.post("/account/tokens")
@spec(body=m.TokenCreate, response=m.TokenCreated, status=201)
def create_token() -> ResponseReturnValue:
    """A new API token, shown this once. Also the login: it accepts name and password."""
    body = _only(_body(), "description")
    description = _string(body, "description", required=False)[:200]
    record, token = store().create_token_record(g.user, description)
    return jsonify({**token_json(record), "token": token, "user": g.user.name}), 201


@api.delete("/account/tokens/<int:token_id>")
@spec(response=dict[str, Any])
def revoke_token(token_id: int) -> ResponseReturnValue:
    store().revoke_token(g.user, token_id)
    return jsonify({"id": token_id, "revoked": True})


# --- users (admins) ------------------------------------------------------------------
def _admin() -> None:
    if not g.user.is_admin:
        raise Forbidden("only admins manage users")


@api.get("/users")
@spec(response=list[m.Account], ranges=USER_RANGES)
def list_users() -> ResponseReturnValue:
    _admin()
    return paginate([{"name": u.name, "is_admin": u.is_admin} for u in store().users()],
                    USER_RANGES)


@api.post("/users")
@spec(body=m.UserCreate, response=m.UserCreated, status=201)
def create_user() -> ResponseReturnValue:
    """{"name", "is_admin"?, "password"?}: without a password one is made and shown once."""
    _admin()
    body = _only(_body(), "name", "is_admin", "password")
    name = _string(body, "name")
    if not USER_NAME.match(name):
        raise InvalidInput(f"{name!r} is not a valid user name: 2 to 64 lowercase letters, "
                           "digits and . _ @ + -, starting with a letter or digit")
    is_admin = body.get("is_admin", False)
    if not isinstance(is_admin, bool):
        raise InvalidInput("is_admin must be true or false")
    generated = "password" not in body
    password = secrets.token_urlsafe(15) if generated else _check_password(
        _string(body, "password"))
    user = store().create_user(name, is_admin=is_admin)
    store().set_password(user, password)
    answer = {"name": user.name, "is_admin": user.is_admin}
    if generated:
        answer["password"] = password
    return jsonify(answer), 201


# --- collaborators, transfer, audit ---------------------------------------------------
COLLABORATOR_RANGES = ("user",)
AUDIT_RANGES = ("id",)


def _collaborators(app: App) -> list[dict]:
    return [{"user": c.user, "role": c.role, "app_owner": c.is_app_owner}
            for c in store().collaborators(app)]


@api.get("/apps/<name>/collaborators")
@spec(response=list[m.Collaborator], ranges=COLLABORATOR_RANGES)
def list_collaborators(name: str) -> ResponseReturnValue:
    return paginate(_collaborators(app_for_request(name)), COLLABORATOR_RANGES)


@api.post("/apps/<name>/collaborators")
@spec(body=m.CollaboratorCreate, response=list[m.Collaborator], status=201)
def create_collaborator(name: str) -> ResponseReturnValue:
    """{"user": NAME, "role": "view|deploy|owner"} (role default: deploy)."""
    app = app_for_request(name, "manage")
    body = _only(_body(), "user", "role")
    access.add_collaborator(store(), app, body.get("user"), body.get("role", access.DEFAULT_ROLE))
    return jsonify(_collaborators(app)), 201


@api.patch("/apps/<name>/collaborators/<user>")
@spec(body=m.CollaboratorPatch, response=list[m.Collaborator])
def update_collaborator(name: str, user: str) -> ResponseReturnValue:
    app = app_for_request(name, "manage")
    body = _only(_body(), "role")
    if "role" not in body:
        raise InvalidInput('send {"role": "view|deploy|owner"}')
    access.change_role(store(), app, user, body["role"])
    return jsonify(_collaborators(app))


@api.delete("/apps/<name>/collaborators/<user>")
@spec(response=dict[str, Any])
def delete_collaborator(name: str, user: str) -> ResponseReturnValue:
    """Owners remove anyone; any collaborator may remove themselves (leave the app)."""
    app = app_for_request(name, access.removal_action(g.user, user))
    access.remove_collaborator(store(), app, user)
    return jsonify({"user": user, "removed": True})


@api.post("/apps/<name>/transfer")
@spec(body=m.Transfer, response=dict[str, str])
def transfer_app(name: str) -> ResponseReturnValue:
    """{"owner": NAME}: the new owner; the previous one stays on as a deploy collaborator."""
    app = app_for_request(name, "transfer")
    body = _only(_body(), "owner")
    app = access.transfer(store(), app, body.get("owner"))
    return jsonify({"name": app.name, "owner": app.owner})


@api.get("/apps/<name>/audit")
@spec(response=list[m.AuditEntry], ranges=AUDIT_RANGES,
      query={"limit": {"type": "integer", "minimum": 1, "maximum": 1000}})
def list_audit(name: str) -> ResponseReturnValue:
    """Who did what, newest first: pages of ?limit=N (default 100, at most 1000) unless a
    Range asks otherwise."""
    app = app_for_request(name, "audit")
    limit = request.args.get("limit", "100")
    if not limit.isascii() or not limit.isdigit() or not 0 < int(limit) <= 1000:
        raise InvalidInput("limit must be a number from 1 to 1000")
    return paginate_rows(lambda window: [audit_json(e) for e in store().audit_in(app, window)],
                         AUDIT_RANGES[0], descending=True, default_max=int(limit))
