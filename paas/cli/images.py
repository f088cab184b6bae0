"""`paas images:export` and `paas images:gc`: a release's image as an OCI layout, and cleanup."""

from __future__ import annotations

import tarfile
from pathlib import Path

import click

from paas.cli.common import api, app_option, echo_json, json_option, resolve_app
from paas.errors import PaasError


@click.command("images:export")
@app_option
@click.argument("args", nargs=-1, required=True, metavar="[vN] DIR")
def images_export(app: str | None, args: tuple[str, ...]) -> None:
    """Write a release's image (default: the current one) to DIR as an OCI image layout."""
    if len(args) > 2:
        raise PaasError("give at most a release and a folder: `paas images:export -a APP v3 DIR`")
    version = args[0].lower().removeprefix("v") if len(args) == 2 else "current"
    dest = Path(args[-1])
    if dest.exists() and any(dest.iterdir()) and not (dest / "oci-layout").exists():
        raise PaasError(f"{dest} is not empty and not an OCI layout; choose an empty folder")
    name = resolve_app(app)
    dest.mkdir(parents=True, exist_ok=True)
    with api().download(f"apps/{name}/releases/{version}/image") as resp:
        with tarfile.open(fileobj=resp.raw, mode="r|") as archive:
            archive.extractall(dest, filter="data")
    click.echo(f"Exported {name} to {dest} (OCI image layout; tag latest)")


@click.command("images:gc")
@json_option
def images_gc(as_json: bool) -> None:
    """Remove images and layers that no recent release or running dyno needs (admins)."""
    result = api().post("images/gc")
    if as_json:
        echo_json(result)
        return
    click.echo(f"Removed {len(result['removed_images'])} images and "
               f"{len(result['removed_layers'])} layers, freed {result['freed_bytes']} bytes")
