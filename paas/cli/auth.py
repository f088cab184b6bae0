"""`paas login`: check an API token and remember it (URL in config.json, token in ~/.netrc)."""

from __future__ import annotations

import sys

import click

from paas.cli import netrc_file
from paas.cli.client import (
    ApiClient,
    default_url,
    load_cli_config,
    normalise_url,
    save_cli_config,
    url_host,
)
from paas.errors import PaasError


def _read_token(token: str | None) -> str:
    if token is None:
        if sys.stdin.isatty():
            token = click.prompt("API token", hide_input=True)
        else:
            token = sys.stdin.readline()
    token = (token or "").strip()
    if not token:
        raise PaasError("no token given; pass --token, type it at the prompt or pipe it in")
    return token


@click.command("login")
@click.option("--url", help="The platform's URL (default: the one in use now).")
@click.option("--token", help="The API token (default: prompt, or read from stdin).")
def login(url: str | None, token: str | None) -> None:
    """Log in to a platform with an API token."""
    platform = normalise_url(url) if url else default_url()
    secret = _read_token(token)
    with ApiClient(platform, secret) as client:
        account = client.get("account")
    netrc_file.store_password(url_host(platform), secret)
    save_cli_config({**load_cli_config(), "url": platform})
    click.echo(f"Logged in as {account.get('name', '?')}")
