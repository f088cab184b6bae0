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

import urllib3

from paas.build import url_guard
from paas.config import Settings
from paas.errors import BuildFailed, PayloadTooLarge

#: The largest source tarball taken, in bytes (PAAS_SOURCE_MAX_MB).
MAX_BYTES = int(os.environ.get("PAAS_SOURCE_MAX_MB") or "512") * 1024 * 1024
FETCH_TIMEOUT = (10, 60)  # (connect, between reads) seconds
_CHUNK = 1024 * 1024
#: The URL as the build's output shows it (no credentials, no query).
display_url = url_guard.display_url


def check_url(url: str, allow_private: bool = False) -> str:
    """`url` if a build may fetch it (http or https, to a public address unless
    `allow_private`: see paas.build.url_guard); InvalidInput saying why not."""
    return url_guard.check(url, allow_private)


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


def fetch(url: str, dest: Path, allow_private: bool = False) -> int:
    """Download the tarball at `url` into `dest`; its size. Errors fail the build. Each
    hop (redirects too) is checked by paas.build.url_guard on the address it connects
    to; HTTP(S)_PROXY is not used, since a proxy would connect where it likes."""
    shown = display_url(url)
    try:
        with url_guard.open_url(url, allow_private=allow_private,
                                timeout=FETCH_TIMEOUT) as response:
            if response.status != 200:
                raise BuildFailed(f"fetching the source from {shown} answered "
                                  f"{response.status}")
            return save(response.stream(_CHUNK, decode_content=True), dest)
    except url_guard.UrlRefused as exc:
        raise BuildFailed(exc.message) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise BuildFailed(f"could not fetch the source from {shown}: {exc}") from exc
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

