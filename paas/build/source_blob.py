"""Builds from a source tarball instead of a git push (for CI without git): fetch one
from a URL or keep an uploaded one, then unpack it as the build's source.

A tarball (gzip, bzip2, xz or plain) may hold the app at its top or, as GitHub's and
GitLab's archives do, inside one top-level folder, which is then taken as the top.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from paas.config import Settings
from paas.errors import BuildFailed, InvalidInput, PayloadTooLarge

#: The largest source tarball taken, in bytes (PAAS_SOURCE_MAX_MB).
MAX_BYTES = int(os.environ.get("PAAS_SOURCE_MAX_MB") or "512") * 1024 * 1024
FETCH_TIMEOUT = (10, 60)  # (connect, between reads) seconds
_CHUNK = 1024 * 1024


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not an http(s) URL of a source tarball")
    return url


def save(chunks: Iterable[bytes], dest: Path) -> int:
    """Write `chunks` to `dest` (atomically), refusing more than MAX_BYTES; the size."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                size += len(chunk)
                if size > MAX_BYTES:
                    raise PayloadTooLarge(f"the source tarball is over {MAX_BYTES >> 20} MiB "
                                          "(PAAS_SOURCE_MAX_MB)")
                fh.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
    return size


def fetch(url: str, dest: Path) -> int:
    """Download the tarball at `url` into `dest`; its size. Errors fail the build."""
    try:
        with requests.get(url, stream=True, timeout=FETCH_TIMEOUT) as response:
            if response.status_code != 200:
                raise BuildFailed(f"fetching the source from {url} answered "
                                  f"{response.status_code}")
            return save(response.iter_content(_CHUNK), dest)
    except requests.RequestException as exc:
        raise BuildFailed(f"could not fetch the source from {url}: {exc}") from exc
    except PayloadTooLarge as exc:
        raise BuildFailed(exc.message) from exc


def unpack(tarball: Path, dest: Path) -> None:
    """Unpack into `dest` (no links out, no devices: tarfile's data filter), lifting a
    lone top-level folder's contents to the top."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball, mode="r:*") as archive:
            archive.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildFailed(f"the source is not a readable tarball: {exc}") from exc
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        inner = entries[0]
        for child in list(inner.iterdir()):
            shutil.move(str(child), dest / child.name)
        inner.rmdir()


#: The source of a build whose tarball was uploaded to the API (kept at upload_path).
UPLOADED = "upload:"


def upload_path(s: Settings, build_id: int) -> Path:
    """Where an uploaded tarball waits for its build (removed once unpacked)."""
    return s.home / "sources" / f"{build_id}.tar"


def display_url(url: str) -> str:
    """The URL without credentials or query (a signed URL's signature is a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
