"""What the commands share: the API client of this run, the app option, output helpers,
and waiting for a release to finish deploying."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from paas.cli.client import ApiClient, resolve_credentials
from paas.errors import InvalidInput, PaasError

F = TypeVar("F", bound=Callable[..., Any])

POLL_INTERVAL = 0.2  # seconds between polls of a release or the dynos
RELEASE_TIMEOUT = 180.0
CONFIG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def api() -> ApiClient:
    """The API client of this invocation, made on first use and closed at exit."""
    root = click.get_current_context().find_root()
    client = root.meta.get("paas.client")
    if client is None:
        creds = resolve_credentials()
        client = root.with_resource(ApiClient(creds.url, creds.token))
        root.meta["paas.client"] = client
    return client


def app_option(f: F) -> F:
    return click.option(
        "-a", "--app", "app", metavar="APP",
        help="The app; by default the one of the `paas` git remote here.",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")(f)


def resolve_app(app: str | None) -> str:
    """The app named by -a, or else the one the `paas` git remote points at."""
    if app:
        return app
    from paas.cli.gitremote import app_from_remote

    inferred = app_from_remote()
    if inferred:
        return inferred
    raise PaasError("no app given; use -a APP or run inside a repo with a `paas` git remote")


def check_config_key(key: str) -> str:
    if not CONFIG_KEY.match(key):
        raise InvalidInput(
            f"{key!r} is not a valid config key; use letters, digits and _, "
            "not starting with a digit"
        )
    return key


# --- output ------------------------------------------------------------------
def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns two spaces apart."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def aligned(pairs: Sequence[tuple[str, str]]) -> str:
    """`key: value` lines with the values lined up, like heroku's info output."""
    width = max((len(k) for k, _ in pairs), default=0) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}".rstrip() for k, v in pairs)


def fmt_time(value: str | None) -> str:
    """An ISO 8601 time as `YYYY-MM-DD HH:MM:SS` in UTC; '' when absent."""
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def action(message: str, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """Print `message... `, then what `done(...)` was given, or `failed` on an error."""
    outcome = ["done"]
    if not quiet:
        click.echo(f"{message}... ", nl=False)
    try:
        yield lambda text: outcome.__setitem__(0, text)
    except BaseException:
        if not quiet:
            click.echo("failed")
        raise
    if not quiet:
        click.echo(outcome[0])


# --- waiting -----------------------------------------------------------------
def wait_for_release(client: ApiClient, app: str, version: int | str) -> dict[str, Any]:
    """Poll release `version` until it is no longer pending; error if it failed."""
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while True:
        release = client.get(f"apps/{app}/releases/{version}")
        status = release.get("status")
        if status == "failed":
            reason = release.get("status_reason") or "no reason given"
            raise PaasError(f"release v{version} failed: {reason}")
        if status != "pending":
            return release
        if time.monotonic() > deadline:
            raise PaasError(
                f"release v{version} is still pending after {RELEASE_TIMEOUT:.0f} s; "
                f"watch it with `paas releases -a {app}` and `paas logs -a {app}`"
            )
        time.sleep(POLL_INTERVAL)
