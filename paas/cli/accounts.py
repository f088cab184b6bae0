"""Accounts from the CLI: `paas users`, `users:add`, `tokens`, `tokens:create`,
`tokens:revoke`, `access`, `access:add`, `access:update`, `access:remove`,
`apps:transfer` and `audit`."""

from __future__ import annotations

import json
import sys
from urllib.parse import quote

import click

from paas.cli.common import api, app_option, echo_json, fmt_time, json_option, resolve_app, table
from paas.errors import PaasError

ROLES = ("view", "deploy", "owner")


# --- users ---------------------------------------------------------------------------
@click.command("users")
@json_option
def users_list(as_json: bool) -> None:
    """List the platform's users (admins only)."""
    users = api().get("users")
    if as_json:
        echo_json(users)
        return
    click.echo("=== Users")
    click.echo(table([[u["name"], "admin" if u["is_admin"] else ""] for u in users]))


@click.command("users:add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an admin.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from stdin instead of having one made.")
def users_add(name: str, admin: bool, password_stdin: bool) -> None:
    """Add a user (admins only). Without --password-stdin a password is made and printed
    once; the user logs in with `paas login -u NAME`."""
    body: dict[str, object] = {"name": name, "is_admin": admin}
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise PaasError("no password on stdin")
        body["password"] = password
    made = api().post("users", body)
    kind = "admin" if made["is_admin"] else "user"
    click.echo(f"Added {kind} {made['name']}.")
    if "password" in made:
        click.echo(f"Password (shown once): {made['password']}")
    click.echo(f"They log in with `paas login -u {made['name']}`.")


# --- tokens ----------------------------------------------------------------------------
@click.command("tokens")
@json_option
def tokens_list(as_json: bool) -> None:
    """List your API tokens (their secrets are never shown again)."""
    tokens = api().get("account/tokens")
    if as_json:
        echo_json(tokens)
        return
    rows = [["ID", "CREATED", "LAST USED", "DESCRIPTION"]] + [
        [str(t["id"]), fmt_time(t["created_at"]), fmt_time(t["last_used_at"]) or "never",
         t["description"]] for t in tokens
    ]
    click.echo(table(rows))


@click.command("tokens:create")
@click.option("-d", "--description", default="", help="What the token is for.")
@json_option
def tokens_create(description: str, as_json: bool) -> None:
    """Create an API token (for CI, scripts); it is shown this once."""
    made = api().post("account/tokens", {"description": description})
    if as_json:
        echo_json(made)
        return
    click.echo(f"Token {made['id']} (shown once; `paas tokens:revoke {made['id']}` ends it):")
    click.echo(made["token"])


@click.command("tokens:revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke one of your API tokens by its id (`paas tokens` lists them)."""
    api().delete(f"account/tokens/{token_id}")
    click.echo(f"Revoked token {token_id}.")


# --- collaborators -----------------------------------------------------------------------
@click.command("access")
@app_option
@json_option
def access_list(app: str | None, as_json: bool) -> None:
    """List who may reach an app, and with which role."""
    name = resolve_app(app)
    collaborators = api().get(f"apps/{name}/collaborators")
    if as_json:
        echo_json(collaborators)
        return
    click.echo(f"=== {name} Access")
    # The API sorts by user; the owner leads here.
    collaborators.sort(key=lambda c: not c["app_owner"])
    click.echo(table([[c["user"], c["role"] + (" (app owner)" if c["app_owner"] else "")]
                      for c in collaborators]))


@click.command("access:add")
@click.argument("user")
@app_option
@click.option("--role", type=click.Choice(ROLES), default="deploy", show_default=True,
              help="view: read only; deploy: push, config, scale, run; owner: also access, "
                   "transfer, destroy.")
def access_add(user: str, app: str | None, role: str) -> None:
    """Give a user access to an app."""
    name = resolve_app(app)
    api().post(f"apps/{name}/collaborators", {"user": user, "role": role})
    click.echo(f"Adding {user} to {name} as {role}... done")


@click.command("access:update")
@click.argument("user")
@app_option
@click.option("--role", type=click.Choice(ROLES), required=True)
def access_update(user: str, app: str | None, role: str) -> None:
    """Change a collaborator's role."""
    name = resolve_app(app)
    api().patch(f"apps/{name}/collaborators/{quote(user, safe='')}", {"role": role})
    click.echo(f"Updating {user} on {name} to {role}... done")


@click.command("access:remove")
@click.argument("user")
@app_option
def access_remove(user: str, app: str | None) -> None:
    """Take a user's access to an app away (your own name: leave the app)."""
    name = resolve_app(app)
    api().delete(f"apps/{name}/collaborators/{quote(user, safe='')}")
    click.echo(f"Removing {user} from {name}... done")


@click.command("apps:transfer")
@click.argument("owner")
@app_option
@click.option("--confirm", metavar="APP", help="The app's name again, to confirm.")
def apps_transfer(owner: str, app: str | None, confirm: str | None) -> None:
    """Make another user the app's owner; you stay on as a deploy collaborator."""
    name = resolve_app(app)
    if confirm is None and sys.stdin.isatty():
        confirm = click.prompt(f"To give {name} to {owner}, type the app's name", default="",
                               show_default=False)
    if confirm != name:
        raise PaasError(f"not transferring {name}: confirm with "
                        f"`paas apps:transfer {owner} -a {name} --confirm {name}`")
    moved = api().post(f"apps/{name}/transfer", {"owner": owner})
    click.echo(f"Transferring {name} to {moved['owner']}... done")


# --- audit ---------------------------------------------------------------------------------
@click.command("audit")
@app_option
@click.option("-n", "--num", "limit", type=click.IntRange(1, 1000), default=100,
              show_default=True, help="How many entries.")
@json_option
def audit_list(app: str | None, limit: int, as_json: bool) -> None:
    """Who did what to an app, newest first (owners and admins)."""
    name = resolve_app(app)
    entries = api().page(f"apps/{name}/audit", f"id ..; max={limit}, order=desc")
    if as_json:
        echo_json(entries)
        return
    rows = [[fmt_time(e["created_at"]), e["user"] or "-", e["action"],
             json.dumps({k: v for k, v in e["detail"].items() if k != "request"},
                        separators=(",", ":")) if len(e["detail"]) > 1 else ""]
            for e in entries]
    click.echo(table(rows) if rows else f"Nothing has been done to {name} yet.")
