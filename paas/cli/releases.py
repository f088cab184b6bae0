"""`paas releases`, `rollback` and `builds`: an app's history."""

from __future__ import annotations

import click

from paas.cli.common import (
    action,
    api,
    app_option,
    echo_json,
    fmt_time,
    json_option,
    resolve_app,
    table,
    wait_for_release,
)
from paas.errors import InvalidInput


def parse_version(text: str) -> int:
    """A release version given as "v3" or "3"."""
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not digits.isdigit() or int(digits) < 1:
        raise InvalidInput(f"{text!r} is not a release version; give one like v3")
    return int(digits)


@click.command("releases")
@app_option
@click.option("-n", "--num", default=15, show_default=True, type=click.IntRange(min=1),
              help="How many releases to show.")
@json_option
def releases_list(app: str | None, num: int, as_json: bool) -> None:
    """List an app's releases, newest first."""
    name = resolve_app(app)
    releases = (api().page(f"apps/{name}/releases",
                           f"version ..; max={min(num, 1000)}, order=desc") or [])[:num]
    if as_json:
        echo_json(releases)
        return
    if not releases:
        click.echo(f"{name} has no releases yet; deploy with `git push paas main`.")
        return
    current = next((r["version"] for r in releases if r.get("current")), None)
    click.echo(f"=== {name} Releases" + (f" - Current: v{current}" if current else ""))
    click.echo(table([
        [
            f"v{r['version']}",
            r.get("description") or "",
            r.get("user") or "",
            fmt_time(r.get("created_at")),
            "" if r.get("status") == "succeeded" else str(r.get("status") or ""),
        ]
        for r in releases
    ]))


@click.command("rollback")
@click.argument("version", required=False, metavar="[vN]")
@app_option
def rollback(version: str | None, app: str | None) -> None:
    """Roll back to an earlier release.

    Without vN, to the release before the current one.
    """
    target = parse_version(version) if version else None
    name = resolve_app(app)
    client = api()
    label = f"Rolling back {name}" + (f" to v{target}" if target else "")
    with action(label) as done:
        release = client.post(f"apps/{name}/releases", {"release": target} if target else {})
        wait_for_release(client, name, release["version"])
        done(f"done, v{release['version']}")


@click.command("builds")
@app_option
@json_option
def builds_list(app: str | None, as_json: bool) -> None:
    """List an app's builds, newest first."""
    name = resolve_app(app)
    builds = api().page(f"apps/{name}/builds", "id ..; max=50, order=desc") or []
    if as_json:
        echo_json(builds)
        return
    if not builds:
        click.echo(f"{name} has no builds yet; deploy with `git push paas main`.")
        return
    click.echo(f"=== {name} Builds")
    click.echo(table([
        [
            str(b.get("id", "")),
            str(b.get("status") or ""),
            (b.get("commit") or "")[:7],
            b.get("user") or "",
            fmt_time(b.get("created_at")),
            b.get("failure") or "",
        ]
        for b in builds
    ]))
