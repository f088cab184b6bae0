"""Export a stored image as an OCI image layout, the directory skopeo, umoci and podman read.

Prefix: the store names a layer by the digest of its tar *without* a prefix (the tree as
it sits under /app, so a runtime mounts `layer_path()` straight at /app). An OCI layer
applies at the root of the filesystem, so here each layer is regenerated from its
unpacked tree with every entry under `app/` (an `app/` directory entry first) and the
config's diff_ids are the digests of those prefixed tars, computed at export. Both are
produced by the same deterministic writer, so both are stable.

Determinism: blobs are canonical JSON or gzip streams with mtime 0, no file name and a
fixed level, so exporting an image twice gives byte-identical layouts (on one host: the
architecture comes from the host, and another zlib may compress differently; the
diff_ids never change).

Not there yet: the stack (the base OS the dyno runs on) is not part of the exported
image, which holds only /app; to run it elsewhere, put its layers on a base image of
the same stack. Compressed blobs are not cached: each export regenerates them.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Any

from paas.errors import Conflict, InvalidInput
from paas.image.layers import HashingWriter, scan, write_tar
from paas.image.store import ImageConfig, ImageStore, canonical_json, digest_hex, write_atomic

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"
APP_PREFIX = "app"
CREATED = "1980-01-01T00:00:00Z"  # SOURCE_DATE_EPOCH: nothing in the image says when
GZIP_LEVEL = 6

# The image-spec grammar for ref names (component ("/" component)*).
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")

# platform.machine() names to Go's GOARCH names, which OCI configs use.
_ARCHITECTURES = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}


def host_architecture() -> str:
    """This host's CPU in OCI (GOARCH) naming: amd64, arm64, …"""
    machine = platform.machine().lower()
    return _ARCHITECTURES.get(machine, machine)


def export_oci(store: ImageStore, image_id: str, dest: Path, tag: str = "latest") -> None:
    """Write image `image_id` as an OCI image layout at `dest`, under the ref name `tag`.

    `dest` may be missing, empty, or an OCI layout already: other refs in it are kept,
    a ref named `tag` is replaced.
    """
    if not _REF_NAME.fullmatch(tag):
        raise InvalidInput(f"tag {tag!r} is not a valid OCI ref name (try letters, digits, .-_)")
    image = store.image(image_id)
    dest = Path(dest)
    index = _existing_index(dest)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    layer_descriptors: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for digest in image.layers:
        descriptor, diff_id = _write_layer_blob(store.layer_path(digest), blobs)
        layer_descriptors.append(descriptor)
        diff_ids.append(diff_id)

    config = _config_blob(image.config, image.layers, diff_ids)
    config_descriptor = _write_blob(blobs, canonical_json(config), CONFIG_MEDIA_TYPE)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_descriptor,
        "layers": layer_descriptors,
    }
    manifest_descriptor = _write_blob(blobs, canonical_json(manifest), MANIFEST_MEDIA_TYPE)
    manifest_descriptor["annotations"] = {REF_NAME: tag}

    others = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
    manifests = sorted(
        [*others, manifest_descriptor],
        key=lambda m: (m.get("annotations", {}).get(REF_NAME, ""), m["digest"]),
    )
    write_atomic(dest / "oci-layout", canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    # index.json last: until it is written, the new ref does not exist.
    write_atomic(dest / "index.json", canonical_json(
        {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
    ))


def _existing_index(dest: Path) -> dict[str, Any]:
    """The index of the layout at `dest`, or an empty one; Conflict for anything else."""
    empty: dict[str, Any] = {"manifests": []}
    if not dest.exists():
        return empty
    if not dest.is_dir():
        raise Conflict(f"{dest} exists and is not a directory; choose another export path")
    if (dest / "oci-layout").is_file() and (dest / "index.json").is_file():
        try:
            index = json.loads((dest / "index.json").read_bytes())
            if isinstance(index.get("manifests"), list):
                return index
        except (ValueError, AttributeError):
            pass
        raise Conflict(f"{dest}/index.json is not an OCI index; remove {dest} and export again")
    if any(dest.iterdir()):
        raise Conflict(f"{dest} is not empty and not an OCI layout; choose another export path")
    return empty


def _config_blob(config: ImageConfig, layers: list[str], diff_ids: list[str]) -> dict[str, Any]:
    run: dict[str, Any] = {
        "Env": [f"{name}={value}" for name, value in sorted(config.env.items())],
        "WorkingDir": config.working_dir,
        "ExposedPorts": {(p if "/" in p else f"{p}/tcp"): {} for p in config.exposed_ports},
        "Labels": dict(config.labels),
    }
    if config.cmd is not None:
        run["Cmd"] = list(config.cmd)
    return {
        "architecture": host_architecture(),
        "os": "linux",
        "created": CREATED,
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        # One entry per layer; the comment maps it back to the store's own digest.
        "history": [
            {"created": CREATED, "created_by": "paas build", "comment": f"paas layer {digest}"}
            for digest in layers
        ],
    }


def _write_layer_blob(tree: Path, blobs: Path) -> tuple[dict[str, Any], str]:
    """Write the gzip layer of `tree` (under app/) as a blob; its descriptor and diff_id."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=blobs)
    try:
        with os.fdopen(fd, "wb") as raw:
            compressed = HashingWriter(raw)
            # filename="" and mtime=0: nothing of this host or moment in the gzip header.
            with gzip.GzipFile(filename="", mode="wb", fileobj=compressed,
                               compresslevel=GZIP_LEVEL, mtime=0) as gz:
                stats = write_tar(scan(tree), gz, prefix=APP_PREFIX)
        os.chmod(tmp, 0o644)
        os.replace(tmp, blobs / digest_hex(compressed.digest()))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    descriptor = {
        "mediaType": LAYER_MEDIA_TYPE,
        "digest": compressed.digest(),
        "size": compressed.size,
    }
    return descriptor, stats.digest


def _write_blob(blobs: Path, data: bytes, media_type: str) -> dict[str, Any]:
    hex_ = hashlib.sha256(data).hexdigest()
    write_atomic(blobs / hex_, data)
    return {"mediaType": media_type, "digest": f"sha256:{hex_}", "size": len(data)}


