"""`paas logs`: print an app's recent log lines, and with --tail keep streaming them."""

from __future__ import annotations

from collections.abc import Iterator

import click

from paas.cli.client import ApiClient
from paas.cli.common import api, app_option, resolve_app


def log_lines(client: ApiClient, app: str, num: int, tail: bool) -> Iterator[str]:
    """The app's last `num` log lines, then (with `tail`) new ones as they come."""
    return client.stream_lines(
        f"apps/{app}/log-session", lines=num, tail=1 if tail else 0
    )


@click.command("logs")
@app_option
@click.option("-t", "--tail", is_flag=True, help="Keep streaming new lines.")
@click.option("-n", "--num", default=100, show_default=True, type=click.IntRange(min=1),
              help="How many recent lines to show first.")
def logs(app: str | None, tail: bool, num: int) -> None:
    """Show an app's logs."""
    name = resolve_app(app)
    lines = log_lines(api(), name, num, tail)
    try:
        for line in lines:
            click.echo(line)
    except KeyboardInterrupt:
        # Ctrl-C is how a tail ends; that is success, not an error.
        pass
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()
