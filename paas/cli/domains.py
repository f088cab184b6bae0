"""`paas domains`, `domains:add` and `domains:remove`: the names an app answers to."""

from __future__ import annotations

import click

from paas.cli.common import action, api, app_option, echo_json, json_option, resolve_app, table


@click.command("domains")
@app_option
@json_option
def domains_list(app: str | None, as_json: bool) -> None:
    """List the app's domains: its platform one and the custom ones."""
    name = resolve_app(app)
    domains = api().get(f"apps/{name}/domains")
    if as_json:
        echo_json(domains)
        return
    platform = [d["hostname"] for d in domains if d["kind"] == "platform"]
    custom = [d for d in domains if d["kind"] == "custom"]
    click.echo(f"=== {name} Platform Domain")
    click.echo("\n".join(platform))
    click.echo()
    if not custom:
        click.echo(f"{name} has no custom domains; add one with `paas domains:add`.")
        return
    click.echo(f"=== {name} Custom Domains")
    click.echo(table([("Domain Name", "Added")] + [
        (d["hostname"], d.get("created_at") or "") for d in custom
    ]))


@click.command("domains:add")
@click.argument("hostname")
@app_option
def domains_add(hostname: str, app: str | None) -> None:
    """Make the app answer at HOSTNAME (www.example.com, or *.example.com for every name
    one level under it). Point the name's DNS at this platform."""
    name = resolve_app(app)
    with action(f"Adding {hostname} to {name}") as done:
        added = api().post(f"apps/{name}/domains", {"hostname": hostname})
        done("done")
    click.echo(f"Point {added['hostname']}'s DNS (a CNAME, or A/AAAA records) at this "
               "platform; requests for it reach the app at once.")


@click.command("domains:remove")
@click.argument("hostname")
@app_option
def domains_remove(hostname: str, app: str | None) -> None:
    """Stop the app answering at HOSTNAME."""
    name = resolve_app(app)
    with action(f"Removing {hostname} from {name}"):
        api().delete(f"apps/{name}/domains/{hostname}")
