"""API resources of images: a release's image as an OCI layout (a tar), and garbage collection."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Response, g, jsonify
from flask.typing import ResponseReturnValue

from paas.agent import state as dyno_state
from paas.errors import Forbidden, InvalidInput
from paas.image import gc, image_store
from paas.image.oci import export_oci
from web.api import api, app_for_request, rds, settings, store
from web.api.schema import spec


class _Chunks(io.RawIOBase):
    """A write-only file whose writes are collected for a streaming response."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.chunks.append(bytes(data))
        return len(data)


def _tar_stream(folder: Path) -> Iterator[bytes]:
    """The folder as an uncompressed tar, streamed as it is written; removed afterwards."""
    sink = _Chunks()
    try:
        with tarfile.open(fileobj=sink, mode="w|") as archive:
            for path in sorted(folder.rglob("*")):
                archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
                yield from sink.chunks
                sink.chunks.clear()
        yield from sink.chunks
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@api.get("/apps/<name>/releases/<version>/image")
@spec(response=bytes, media_type="application/x-tar")
def export_image(name: str, version: str) -> Response:
    app = app_for_request(name)
    if version == "current":
        release = store().current_release(app)
        if release is None:
            raise InvalidInput(f"{app.name} has no release yet; push it first")
    else:
        if not version.isdigit():
            raise InvalidInput(f"{version!r} is not a release version; use a number like 3")
        release = store().release(app, int(version))
    if not release.slug or not release.slug.startswith("sha256:"):
        raise InvalidInput(f"v{release.version} has no image; rebuild the app to make one")
    folder = Path(tempfile.mkdtemp(prefix="paas-export-"))
    export_oci(image_store(settings()), release.slug, folder / "layout")
    return Response(_tar_stream(folder / "layout"), mimetype="application/x-tar",
                    headers={"Paas-Release": str(release.version)})


@api.post("/images/gc")
@spec(response=dict[str, Any])
def collect_garbage() -> ResponseReturnValue:
    if not g.user.is_admin:
        raise Forbidden("only admins can collect the image store's garbage")
    running = set()
    for app in store().apps():
        versions = {d.get("release") for d in dyno_state.read(rds(), app.name)}
        for version in versions - {None}:
            slug = store().release(app, version).slug
            if slug:
                running.add(slug)
    result = gc.collect(store(), image_store(settings()), running_images=running)
    return jsonify({"removed_images": result.removed_images,
                    "removed_layers": result.removed_layers,
                    "freed_bytes": result.freed_bytes})
