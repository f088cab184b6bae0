"""`paas buildpacks` and friends: which buildpacks build an app, in order; and the build cache."""

from __future__ import annotations

from typing import Any, TypeVar

import click

from paas.cli.common import action, api, app_option, echo_json, json_option, resolve_app
from paas.errors import InvalidInput

F = TypeVar("F")


def _current(app: str) -> list[str]:
    return [i["buildpack"]["url"] for i in api().get(f"apps/{app}/buildpack-installations")]


def _save(app: str, urls: list[str]) -> list[dict[str, Any]]:
    return api().request("PUT", f"apps/{app}/buildpack-installations",
                         json={"updates": [{"buildpack": u} for u in urls]})[0]


def _show(app: str, installations: list[dict[str, Any]]) -> None:
    if not installations:
        click.echo(f"{app} has no buildpacks set: each push detects one "
                   "(or uses the .buildpacks file of the code)")
        return
    click.echo(f"=== {app} Buildpacks")
    for item in installations:
        click.echo(f"{item['ordinal'] + 1}. {item['buildpack']['url']}")


@click.command("buildpacks")
@app_option
@json_option
def buildpacks_list(app: str | None, as_json: bool) -> None:
    """List the app's buildpacks."""
    name = resolve_app(app)
    installations = api().get(f"apps/{name}/buildpack-installations")
    if as_json:
        echo_json(installations)
    else:
        _show(name, installations)


def _index_option(f: F) -> F:
    return click.option("-i", "--index", type=click.IntRange(min=1),
                        help="Position in the list, from 1.")(f)


@click.command("buildpacks:add")
@click.argument("buildpack")
@_index_option
@app_option
def buildpacks_add(buildpack: str, index: int | None, app: str | None) -> None:
    """Add a buildpack (a built-in name, a git URL or a tarball URL); the next push uses it."""
    name = resolve_app(app)
    urls = _current(name)
    position = len(urls) if index is None else min(index - 1, len(urls))
    urls.insert(position, buildpack)
    _show(name, _save(name, urls))


@click.command("buildpacks:set")
@click.argument("buildpack")
@_index_option
@app_option
def buildpacks_set(buildpack: str, index: int | None, app: str | None) -> None:
    """Set the buildpack (or the one at --index) to BUILDPACK."""
    name = resolve_app(app)
    urls = _current(name)
    if index is None or not urls:
        urls = [buildpack] if index is None else urls + [buildpack]
    elif index - 1 < len(urls):
        urls[index - 1] = buildpack
    else:
        urls.append(buildpack)
    _show(name, _save(name, urls))


@click.command("buildpacks:remove")
@click.argument("buildpack", required=False)
@_index_option
@app_option
def buildpacks_remove(buildpack: str | None, index: int | None, app: str | None) -> None:
    """Remove a buildpack, by name/URL or by --index."""
    name = resolve_app(app)
    urls = _current(name)
    if index is not None:
        if index > len(urls):
            raise InvalidInput(f"{name} has {len(urls)} buildpacks; there is no index {index}")
        urls.pop(index - 1)
    elif buildpack is not None:
        matches = [u for u in urls if u == buildpack or u == buildpack.removeprefix("heroku/")]
        if not matches:
            raise InvalidInput(f"{buildpack} is not one of {name}'s buildpacks")
        urls.remove(matches[0])
    else:
        raise InvalidInput("name the buildpack to remove, or give --index")
    _show(name, _save(name, urls))


@click.command("buildpacks:clear")
@app_option
def buildpacks_clear(app: str | None) -> None:
    """Forget the app's buildpacks: pushes detect one again."""
    name = resolve_app(app)
    _save(name, [])
    click.echo(f"Buildpacks cleared; the next push of {name} detects its buildpack")


@click.command("builds:cache:purge")
@app_option
def builds_cache_purge(app: str | None) -> None:
    """Empty the app's build cache; the next build installs everything afresh."""
    name = resolve_app(app)
    with action(f"Purging the build cache of {name}") as done:
        api().delete(f"apps/{name}/build-cache")
        done("done")
