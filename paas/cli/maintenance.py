"""`paas maintenance`, `maintenance:on` and `maintenance:off`: answer 503 with a page
instead of routing to the app; its dynos keep running."""

from __future__ import annotations

import click

from paas.cli.common import action, api, app_option, resolve_app


@click.command("maintenance")
@app_option
def maintenance_show(app: str | None) -> None:
    """Say whether the app is in maintenance mode."""
    name = resolve_app(app)
    click.echo("on" if api().get(f"apps/{name}/routing")["maintenance"] else "off")


@click.command("maintenance:on")
@app_option
def maintenance_on(app: str | None) -> None:
    """Put the app in maintenance mode: visitors get a 503 page, dynos keep running."""
    name = resolve_app(app)
    with action(f"Enabling maintenance mode for {name}"):
        api().patch(f"apps/{name}/routing", {"maintenance": True})


@click.command("maintenance:off")
@app_option
def maintenance_off(app: str | None) -> None:
    """Take the app out of maintenance mode."""
    name = resolve_app(app)
    with action(f"Disabling maintenance mode for {name}"):
        api().patch(f"apps/{name}/routing", {"maintenance": False})
