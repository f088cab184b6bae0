"""The access tab: who works on an app and with which role, and the forms with which its
owners (and admins) add, change and remove collaborators and transfer the app.

The rules are paas.access's, the ones the REST API applies; users who may not change
access see the list only (a forged form still gets the API's 403 or 404).
"""

from __future__ import annotations

from flask import flash, g, redirect, request, url_for
from flask.typing import ResponseReturnValue

from paas import access
from paas.errors import InvalidInput
from paas.store_accounts import ROLES
from web.dashboard import app_for_user, audit, dashboard, may, store
from web.dashboard.views import form_done, render_tab


@dashboard.get("/apps/<name>/access")
def access_page(name: str) -> str:
    app = app_for_user(name)
    return render_tab("access.html", app, "access", collaborators=store().collaborators(app),
                      roles=ROLES, default_role=access.DEFAULT_ROLE,
                      can_manage=may(app, "manage"), can_transfer=may(app, "transfer"))


@dashboard.post("/apps/<name>/collaborators")
def add_collaborator(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "manage")
    user = request.form.get("user", "").strip()
    role = request.form.get("role", access.DEFAULT_ROLE)
    if not user:
        raise InvalidInput("give the user name of the collaborator to add")
    access.add_collaborator(store(), app, user, role)
    audit(app, "create_collaborator", {"user": user, "role": role})
    return form_done(f"Added {user} to {app.name} with the {role} role.")


@dashboard.post("/apps/<name>/collaborators/<user>")
def change_role(name: str, user: str) -> ResponseReturnValue:
    app = app_for_user(name, "manage")
    role = request.form.get("role", "")
    access.change_role(store(), app, user, role)
    audit(app, "update_collaborator", {"role": role})
    return form_done(f"{user} now has the {role} role on {app.name}.")


@dashboard.post("/apps/<name>/collaborators/<user>/remove")
def remove_collaborator(name: str, user: str) -> ResponseReturnValue:
    """Owners remove anyone but the app's owner; anyone may remove themselves (leave)."""
    app = app_for_user(name, access.removal_action(g.user, user))
    access.remove_collaborator(store(), app, user)
    audit(app, "delete_collaborator")
    if user == g.user.name and not may(app, "read"):
        flash(f"You left {app.name}.", "ok")
        return redirect(url_for("dashboard.apps"))
    return form_done(f"Removed {user} from {app.name}.")


@dashboard.post("/apps/<name>/transfer")
def transfer_app(name: str) -> ResponseReturnValue:
    app = app_for_user(name, "transfer")
    if request.form.get("confirm", "").strip() != app.name:
        raise InvalidInput(f"type the app's name, {app.name}, to transfer it")
    owner = request.form.get("owner", "").strip()
    previous = app.owner
    app = access.transfer(store(), app, owner)
    audit(app, "transfer_app", {"owner": owner})
    return form_done(f"{app.name} now belongs to {app.owner}; {previous} stays on with the "
                     "deploy role.")
