"""`paas apps`, `apps:create`, `apps:info` and `apps:destroy`."""

from __future__ import annotations

import sys

import click

from paas.cli.common import aligned, api, app_option, echo_json, fmt_time, json_option, resolve_app
from paas.errors import PaasError


def _release_label(version: int | None) -> str:
    return f"v{version}" if version is not None else "-"


@click.command("apps")
@json_option
def apps_list(as_json: bool) -> None:
    """List apps."""
    apps = api().get("apps")
    if as_json:
        echo_json(apps)
        return
    if not apps:
        click.echo("You have no apps; create one with `paas apps:create`.")
        return
    click.echo("=== Apps")
    for app in sorted(apps, key=lambda a: a["name"]):
        click.echo(app["name"])


@click.command("apps:create")
@click.argument("name", required=False)
@json_option
def apps_create(name: str | None, as_json: bool) -> None:
    """Create an app.

    Without NAME the platform picks a readable random one.
    """
    app = api().post("apps", {"name": name} if name else {})
    if as_json:
        echo_json(app)
        return
    click.echo(f"Creating {app['name']}... done")
    click.echo(f"{app['web_url']} | {app['git_url']}")
    click.echo(f"Add it as a git remote with `paas git:remote -a {app['name']}`.")


@click.command("apps:info")
@app_option
@json_option
def apps_info(app: str | None, as_json: bool) -> None:
    """Show an app's details."""
    name = resolve_app(app)
    client = api()
    info = client.get(f"apps/{name}")
    if as_json:
        echo_json(info)
        return
    formation = client.get(f"apps/{name}/formation") or []
    dynos = ", ".join(f"{f['type']}: {f['quantity']}" for f in formation) or "none"
    click.echo(f"=== {info['name']}")
    click.echo(aligned([
        ("Owner", str(info.get("owner") or "")),
        ("Created", fmt_time(info.get("created_at"))),
        ("Release", _release_label(info.get("release"))),
        ("Dynos", dynos),
        ("Web URL", info.get("web_url") or ""),
        ("Git URL", info.get("git_url") or ""),
    ]))


@click.command("apps:destroy")
@click.argument("name", required=False)
@app_option
@click.option("--confirm", metavar="NAME", help="The app's name again, to confirm.")
def apps_destroy(name: str | None, app: str | None, confirm: str | None) -> None:
    """Destroy an app for good.

    Its dynos stop; its releases, git repo and slugs are removed.
    """
    if name and app and name != app:
        raise PaasError(f"two different apps given ({name} and {app}); give one")
    target = resolve_app(name or app)
    if confirm is None and sys.stdin.isatty():
        click.echo(f"This destroys {target} with its dynos, releases and git repo.")
        confirm = click.prompt("To proceed, type the app's name", default="", show_default=False)
    if confirm != target:
        raise PaasError(
            f"not destroying {target}: confirm with `paas apps:destroy {target} --confirm {target}`"
        )
    api().delete(f"apps/{target}")
    click.echo(f"Destroying {target}... done")
