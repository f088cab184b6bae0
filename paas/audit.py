"""Entries of an app's audit log, written alike wherever a change comes from: the REST
API's requests, the dashboard's forms (a `git push` writes its own)."""

from __future__ import annotations

from typing import Any

from paas.store import Store, User


def entry_detail(request_line: str, body: object = None, *, permission: str = "",
                 release: str | None = None) -> dict[str, Any]:
    """What an entry keeps of a change: the request line, its body in the API's shape,
    and the release it made. `permission` is the action checked (paas.permissions)."""
    detail: dict[str, Any] = {"request": request_line}
    if isinstance(body, dict) and body:
        # Config values are secrets: only which keys changed is kept.
        detail["body"] = sorted(body) if permission.startswith("config") else body
    if release is not None:
        detail["release"] = release
    return detail


def record(store: Store, app_name: str, user: User | None, action: str, request_line: str,
           body: object = None, *, permission: str = "", release: str | None = None) -> None:
    """Note that `user` did `action` (the REST API's endpoint name, e.g. `add_domain`)."""
    store.record_audit(app_name, user, action, entry_detail(
        request_line, body, permission=permission, release=release))
