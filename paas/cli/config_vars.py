"""`paas config`, `config:get`, `config:set` and `config:unset`.

Setting or unsetting a var makes a new release; the command waits until that
release is deployed (or has failed) before it returns.
"""

from __future__ import annotations

import shlex

import click

from paas.cli.client import ApiClient
from paas.cli.common import (
    action,
    aligned,
    api,
    app_option,
    check_config_key,
    echo_json,
    json_option,
    resolve_app,
    wait_for_release,
)
from paas.errors import InvalidInput


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    """KEY=value arguments as a dict; the value may itself contain '='."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"expected KEY=value, got {pair!r}")
        result[check_config_key(key)] = value
    return result


def _names(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + f" and {keys[-1]}"


def _change_config(client: ApiClient, app: str, body: dict[str, str | None], verb: str) -> None:
    with action(f"{verb} {_names(list(body))} and restarting {app}") as done:
        _, resp = client.patch(f"apps/{app}/config-vars", body)
        version = resp.headers.get("Paas-Release")
        if version:
            wait_for_release(client, app, version)
            done(f"done, v{version}")


@click.command("config")
@app_option
@click.option("--shell", is_flag=True, help="Print KEY=value lines a shell can source.")
@json_option
def config_show(app: str | None, shell: bool, as_json: bool) -> None:
    """Show an app's config vars."""
    name = resolve_app(app)
    config = api().get(f"apps/{name}/config-vars") or {}
    if as_json:
        echo_json(config)
    elif shell:
        for key in sorted(config):
            click.echo(f"{key}={shlex.quote(str(config[key]))}")
    else:
        click.echo(f"=== {name} Config Vars")
        if config:
            click.echo(aligned([(k, str(config[k])) for k in sorted(config)]))


@click.command("config:get")
@click.argument("key")
@app_option
@click.option("--shell", is_flag=True, help="Print KEY=value.")
def config_get(key: str, app: str | None, shell: bool) -> None:
    """Print one config var's value.

    Prints an empty line when KEY is not set.
    """
    check_config_key(key)
    name = resolve_app(app)
    value = (api().get(f"apps/{name}/config-vars") or {}).get(key)
    if shell:
        click.echo(f"{key}={shlex.quote('' if value is None else str(value))}")
    else:
        click.echo("" if value is None else str(value))


@click.command("config:set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=value...")
@app_option
def config_set(pairs: tuple[str, ...], app: str | None) -> None:
    """Set config vars and restart the app.

    Waits until the new release is deployed.
    """
    values = parse_assignments(pairs)
    name = resolve_app(app)
    _change_config(api(), name, dict(values), "Setting")
    click.echo(aligned([(k, v) for k, v in values.items()]))


@click.command("config:unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@app_option
def config_unset(keys: tuple[str, ...], app: str | None) -> None:
    """Unset config vars and restart the app.

    Waits until the new release is deployed.
    """
    body: dict[str, str | None] = {check_config_key(k): None for k in keys}
    name = resolve_app(app)
    _change_config(api(), name, body, "Unsetting")
