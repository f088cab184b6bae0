"""`paas ps`, `ps:scale` and `ps:restart`: an app's dynos and its formation."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import click

from paas.cli import common
from paas.cli.common import action, api, app_option, echo_json, fmt_time, json_option, resolve_app
from paas.errors import InvalidInput, PaasError

SCALE_TIMEOUT = 90.0
_PROCESS_TYPE = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_scale(pairs: tuple[str, ...]) -> dict[str, int]:
    """TYPE=N arguments as {type: quantity}."""
    result: dict[str, int] = {}
    for pair in pairs:
        kind, sep, quantity = pair.partition("=")
        if not sep or not _PROCESS_TYPE.match(kind) or not quantity.isdigit():
            raise InvalidInput(f"expected TYPE=N like web=2, got {pair!r}")
        if kind in result:
            raise InvalidInput(f"{kind} is given twice; give each process type once")
        result[kind] = int(quantity)
    return result


def _type_order(kind: str) -> tuple[bool, str]:
    return (kind != "web", kind)


def _dyno_number(dyno: Mapping[str, Any]) -> tuple[int, str]:
    _, _, number = str(dyno.get("name", "")).rpartition(".")
    return (int(number) if number.isdigit() else 0, str(dyno.get("name", "")))


def format_dynos(dynos: Sequence[Mapping[str, Any]]) -> str:
    """Dynos grouped by type, like `heroku ps`."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for dyno in dynos:
        groups.setdefault(str(dyno.get("type", "")), []).append(dyno)
    blocks = []
    for kind in sorted(groups, key=_type_order):
        members = sorted(groups[kind], key=_dyno_number)
        lines = [f"=== {kind} ({len(members)}): {members[0].get('command') or ''}".rstrip()]
        for dyno in members:
            parts = [f"{dyno.get('name')}: {dyno.get('state')}"]
            if dyno.get("started_at"):
                parts.append(fmt_time(dyno["started_at"]))
            if dyno.get("release") is not None:
                parts.append(f"(v{dyno['release']})")
            if dyno.get("state") == "crashed" and dyno.get("exit_code") is not None:
                parts.append(f"exit code {dyno['exit_code']}")
            if dyno.get("state") == "up" and dyno.get("ready") is False:
                parts.append("out of the route (readiness check failing)")
            if isinstance(dyno.get("memory_bytes"), int):
                parts.append(f"{dyno['memory_bytes'] / 2**20:.0f} MB")
            lines.append(" ".join(parts))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def scaled(
    dynos: Sequence[Mapping[str, Any]], wanted: Mapping[str, int], release: int | None
) -> bool:
    """Whether each scaled type runs exactly its quantity of up dynos, none still
    starting on an older release."""
    for kind, quantity in wanted.items():
        mine = [d for d in dynos if d.get("type") == kind]
        if sum(d.get("state") == "up" for d in mine) != quantity:
            return False
        if release is not None and any(
            d.get("state") == "starting" and (d.get("release") or 0) < release for d in mine
        ):
            return False
    return True


def _running(formation: Sequence[Mapping[str, Any]], wanted: Mapping[str, int]) -> str:
    quantities = {**wanted, **{f["type"]: f["quantity"] for f in formation if f["type"] in wanted}}
    return ", ".join(f"{kind} at {quantities[kind]}" for kind in sorted(wanted, key=_type_order))


@click.command("ps")
@app_option
@json_option
def ps_list(app: str | None, as_json: bool) -> None:
    """List an app's dynos."""
    name = resolve_app(app)
    dynos = api().get(f"apps/{name}/dynos") or []
    if as_json:
        echo_json(dynos)
    elif not dynos:
        click.echo(f"No dynos on {name}")
    else:
        click.echo(format_dynos(dynos))


@click.command("ps:scale")
@click.argument("pairs", nargs=-1, required=True, metavar="TYPE=N...")
@app_option
@json_option
def ps_scale(pairs: tuple[str, ...], app: str | None, as_json: bool) -> None:
    """Scale process types, e.g. web=2.

    Waits until that many dynos of each type are up.
    """
    wanted = parse_scale(pairs)
    name = resolve_app(app)
    client = api()
    with action("Scaling dynos", quiet=as_json) as done:
        formation, _ = client.patch(
            f"apps/{name}/formation",
            {"updates": [{"type": k, "quantity": q} for k, q in wanted.items()]},
        )
        release = client.get(f"apps/{name}").get("release")
        # Before the first deploy there is nothing to start; the formation is all there is.
        if release is not None:
            _wait_for_dynos(name, wanted, release)
        done(f"done, now running {_running(formation or [], wanted)}")
    if as_json:
        echo_json(formation)


def _wait_for_dynos(app: str, wanted: Mapping[str, int], release: int) -> None:
    client = api()
    deadline = time.monotonic() + SCALE_TIMEOUT
    while not scaled(client.get(f"apps/{app}/dynos") or [], wanted, release):
        if time.monotonic() > deadline:
            goal = ", ".join(f"{k}={q}" for k, q in wanted.items())
            raise PaasError(
                f"dynos did not reach {goal} within {SCALE_TIMEOUT:.0f} s; "
                f"see `paas ps -a {app}` and `paas logs -a {app}`"
            )
        time.sleep(common.POLL_INTERVAL)


@click.command("ps:restart")
@click.argument("dyno", required=False, metavar="[DYNO]")
@app_option
def ps_restart(dyno: str | None, app: str | None) -> None:
    """Restart all of an app's dynos (rolling: new ones serve before old ones stop).

    With DYNO (web.2) or a type (web), restart just those: each is drained and
    stopped, then started afresh.
    """
    name = resolve_app(app)
    client = api()
    if dyno is not None:
        with action(f"Restarting {dyno} on {name}"):
            client.post(f"apps/{name}/dynos/{dyno}/actions/stop")
        return
    with action("Restarting dynos"):
        client.delete(f"apps/{name}/dynos")


@click.command("ps:type")
@click.argument("pairs", nargs=-1, metavar="[TYPE=SIZE...]")
@app_option
@json_option
def ps_type(pairs: tuple[str, ...], app: str | None, as_json: bool) -> None:
    """Show or set the dyno size of process types, e.g. web=standard-2x.

    A new size restarts that type's dynos (rolling).
    """
    name = resolve_app(app)
    client = api()
    if pairs:
        updates = []
        for pair in pairs:
            kind, sep, size = pair.partition("=")
            if not sep or not _PROCESS_TYPE.match(kind) or not size:
                raise InvalidInput(f"expected TYPE=SIZE like web=standard-2x, got {pair!r}")
            updates.append({"type": kind, "size": size})
        with action("Changing dyno sizes", quiet=as_json) as done:
            formation, _ = client.patch(f"apps/{name}/formation", {"updates": updates})
            done("done")
    else:
        formation = client.get(f"apps/{name}/formation") or []
    if as_json:
        echo_json(formation)
        return
    click.echo(common.table(
        [("type", "size", "qty", "memory", "pids")]
        + [(f["type"], f["size"], str(f["quantity"]), f"{f['memory_mb']} MB", str(f["pids"]))
           for f in formation]
    ))
