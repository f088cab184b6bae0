"""`paas login`: get an API token (with a user name and password, or given one) and remember
it: the URL in config.json, the token in ~/.netrc, where git's libcurl finds it too."""

from __future__ import annotations

import socket
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


def _read_secret(what: str, given: str | None, from_stdin: bool) -> str:
    if given is None:
        if from_stdin or not sys.stdin.isatty():
            given = sys.stdin.readline()
        else:
            given = click.prompt(what, hide_input=True)
    given = (given or "").rstrip("\r\n")
    if not given.strip():
        raise PaasError(f"no {what.lower()} given; type it at the prompt or pipe it in")
    return given


def _token_by_password(platform: str, name: str, password: str) -> str:
    description = f"paas login on {socket.gethostname()}"
    with ApiClient.with_password(platform, name, password) as client:
        created = client.post("account/tokens", {"description": description})
    return created["token"]


@click.command("login")
@click.option("--url", help="The platform's URL (default: the one in use now).")
@click.option("-u", "--username", help="Log in with this user name and its password.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--token", help="Log in with an existing API token instead.")
def login(url: str | None, username: str | None, password_stdin: bool,
          token: str | None) -> None:
    """Log in to a platform: with a user name and password (the platform makes a token for
    this machine), or with an API token (--token, or piped in without --username)."""
    platform = normalise_url(url) if url else default_url()
    if username is None and token is None and sys.stdin.isatty() and not password_stdin:
        username = click.prompt("User name")
    if username is not None:
        password = _read_secret("Password", None, password_stdin)
        secret = _token_by_password(platform, username.strip(), password)
    else:
        secret = _read_secret("API token", token, False).strip()
    with ApiClient(platform, secret) as client:
        account = client.get("account")
    # git sends the netrc login as the user name; the platform reads only the password.
    netrc_file.store_password(url_host(platform), secret, login=account.get("name") or "paas")
    save_cli_config({**load_cli_config(), "url": platform})
    click.echo(f"Logged in as {account.get('name', '?')}")
