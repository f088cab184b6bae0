"""`paas releases:info`, `releases:output`, `ps:stop`, `ps:set` and `events`."""

from __future__ import annotations

import json

import click

from paas.cli.common import (
    action,
    aligned,
    api,
    app_option,
    echo_json,
    fmt_time,
    json_option,
    resolve_app,
    table,
)
from paas.cli.releases import parse_version
from paas.errors import InvalidInput

#: `paas ps:set` keys, with Dokku's spelling of the stop timeout accepted too.
SETTINGS = {
    "boot-timeout": "boot_timeout",
    "stop-timeout": "stop_timeout",
    "stop-timeout-seconds": "stop_timeout",
}


@click.command("releases:info")
@click.argument("version", required=False, metavar="[vN]")
@app_option
@json_option
def releases_info(version: str | None, app: str | None, as_json: bool) -> None:
    """Show one release (default: the current one): what it runs, its checks and scripts."""
    name = resolve_app(app)
    client = api()
    if version is None:
        current = client.get(f"apps/{name}").get("release")
        if current is None:
            raise InvalidInput(f"{name} has no release yet; deploy with `git push paas main`")
        number = int(current)
    else:
        number = parse_version(version)
    release = client.get(f"apps/{name}/releases/{number}")
    if as_json:
        echo_json(release)
        return
    manifest = release.get("app_json") or {}
    status = release.get("status") or ""
    if release.get("status_reason"):
        status += f" ({release['status_reason'].splitlines()[0]})"
    pairs = [
        ("Version", f"v{release['version']}" + (" (current)" if release.get("current") else "")),
        ("Status", status),
        ("Description", release.get("description") or ""),
        ("By", release.get("user") or ""),
        ("When", fmt_time(release.get("created_at"))),
        ("Commit", (release.get("commit") or "")[:12]),
        ("Build", str(release.get("build_id") or "")),
        ("Image", release.get("image") or ""),
    ]
    for ptype, command in (release.get("process_types") or {}).items():
        pairs.append((f"Process {ptype}", command))
    for kind, command in (manifest.get("scripts") or {}).items():
        pairs.append((f"Script {kind}", command))
    for ptype, checks in (manifest.get("healthchecks") or {}).items():
        for check in checks:
            detail = {k: v for k, v in check.items() if k != "type"}
            pairs.append((f"Check {ptype} {check.get('type')}", json.dumps(detail)))
    if release.get("has_output"):
        pairs.append(("Output", f"paas releases:output v{release['version']} -a {name}"))
    click.echo(f"=== Release v{release['version']} of {name}")
    click.echo(aligned(pairs))


@click.command("releases:output")
@click.argument("version", required=False, metavar="[vN]")
@app_option
def releases_output(version: str | None, app: str | None) -> None:
    """Print what a release's release phase and postdeploy printed."""
    name = resolve_app(app)
    client = api()
    number = parse_version(version) if version else client.get(f"apps/{name}").get("release")
    if number is None:
        raise InvalidInput(f"{name} has no release yet; deploy with `git push paas main`")
    response = client.download(f"apps/{name}/releases/{number}/output")
    try:
        click.echo(response.text, nl=False)
    finally:
        response.close()


@click.command("ps:stop")
@click.argument("dyno", metavar="DYNO")
@app_option
def ps_stop(dyno: str, app: str | None) -> None:
    """Stop a dyno (web.2) or every dyno of a type (web).

    Each is taken out of the route and drained first. A dyno the formation still
    wants is replaced by a fresh one; use ps:scale to run fewer.
    """
    name = resolve_app(app)
    with action(f"Stopping {dyno} on {name}") as done:
        answer = api().post(f"apps/{name}/dynos/{dyno}/actions/stop")
        done("done, " + ", ".join(answer.get("stopping", [])) + " stopping")


@click.command("ps:set")
@click.argument("key", required=False, metavar="[KEY]")
@click.argument("value", required=False, metavar="[SECONDS|default]")
@app_option
@json_option
def ps_set(key: str | None, value: str | None, app: str | None, as_json: bool) -> None:
    """Show or set an app's dyno timeouts, in seconds.

    boot-timeout: how long a web dyno has to listen on $PORT (R10 after; default 60).
    stop-timeout: how long a dyno has between SIGTERM and SIGKILL (default 30).
    `default` goes back to the platform's default.
    """
    name = resolve_app(app)
    client = api()
    if key is None:
        current = client.get(f"apps/{name}/settings")
    else:
        if key not in SETTINGS or value is None:
            raise InvalidInput("usage: paas ps:set boot-timeout|stop-timeout SECONDS|default")
        if value != "default" and not value.isdigit():
            raise InvalidInput(f"{value!r} is not a number of seconds (or `default`)")
        seconds = None if value == "default" else int(value)
        current, _ = client.patch(f"apps/{name}/settings", {SETTINGS[key]: seconds})
    if as_json:
        echo_json(current)
        return
    click.echo(aligned([
        (k.replace("_", "-"), "default" if v is None else f"{v} s") for k, v in current.items()
    ]))


@click.command("events")
@app_option
@click.option("-n", "--num", default=30, show_default=True, type=click.IntRange(1, 1000),
              help="How many recent events to show.")
@json_option
def events_list(app: str | None, num: int, as_json: bool) -> None:
    """Show an app's activity: builds, releases, deploys, dyno crashes, oldest first."""
    name = resolve_app(app)
    found = api().get(f"apps/{name}/events", limit=num) or []
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo(f"No events for {name} yet")
        return
    click.echo(table([
        [fmt_time(e.get("ts")), e.get("event", ""), e.get("proc", ""),
         " ".join(f"{k}={v}" for k, v in (e.get("fields") or {}).items())]
        for e in found
    ]))
