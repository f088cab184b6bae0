"""Deterministic layer tars: the same tree gives the same bytes, hence the same digest.

A layer is a tar of a directory tree (or of some of its top-level entries) in which
nothing of the host survives: entries sorted by path (byte order), every mtime fixed to
SOURCE_DATE_EPOCH (1980-01-01, as in builds), owner 0:0 with empty names, modes
normalised (directories 0755, files 0755 when any execute bit is set else 0644, symlinks
0777 with their target kept), sockets, devices and fifos skipped. Hard links are written
as independent regular files, so the digest depends on content only, not on whether a
copy of the tree kept its links.

The format is GNU tar (not PAX) so no extended header can carry atimes, ctimes or host
names; long names and link targets still work through GNU's `././@LongLink` entries.
The digest, "sha256:<hex>" of the uncompressed tar, is the layer's OCI diff_id.

`write_tar` can also unpack what it writes into a mirror directory in the same pass, so
the image store keeps a tree that is byte for byte what was hashed, and can regenerate
the tar from it later.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# 1980-01-01T00:00:00Z: the earliest time zip (and so wheels and Python's own tooling)
# can express, and what SOURCE_DATE_EPOCH is set to in builds.
SOURCE_DATE_EPOCH = 315532800

DIR_MODE = 0o755
FILE_MODE = 0o644
EXEC_MODE = 0o755
SYMLINK_MODE = 0o777


@dataclass(frozen=True)
class Entry:
    """One normalised tar entry: what goes into the tar, and where its bytes come from."""

    path: str  # relative POSIX path, no leading "/", no ".." (it comes from a directory walk)
    kind: str  # "dir", "file" or "symlink"
    mode: int
    size: int = 0
    target: str = ""  # symlink target, kept as written (it may be absolute)
    source: Path | None = None  # host file to read the bytes of a "file" from


@dataclass(frozen=True)
class TarStats:
    """What writing one tar produced."""

    digest: str  # "sha256:<hex>" of the uncompressed tar bytes (the OCI diff_id)
    size: int  # bytes of the tar
    files: int  # regular files in it


def normalized_mode(st_mode: int) -> int:
    """The mode a layer records for a file, directory or symlink of this host mode."""
    if stat.S_ISDIR(st_mode):
        return DIR_MODE
    if stat.S_ISLNK(st_mode):
        return SYMLINK_MODE
    return EXEC_MODE if st_mode & 0o111 else FILE_MODE


def scan(src: Path, include: Callable[[str], bool] | None = None) -> list[Entry]:
    """The entries of the tree at `src`, sorted, normalised, specials skipped.

    With `include`, only the top-level names for which it is true are taken (with all
    that is under them); `src` itself never becomes an entry.
    """
    entries: list[Entry] = []

    def walk(directory: Path, rel: str) -> None:
        with os.scandir(directory) as it:
            children = list(it)
        for child in children:
            if not rel and include is not None and not include(child.name):
                continue
            path = f"{rel}/{child.name}" if rel else child.name
            st = child.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                entries.append(Entry(path, "dir", DIR_MODE))
                walk(Path(child.path), path)
            elif stat.S_ISREG(st.st_mode):
                entries.append(Entry(path, "file", normalized_mode(st.st_mode), st.st_size,
                                     source=Path(child.path)))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(Entry(path, "symlink", SYMLINK_MODE,
                                     target=os.readlink(child.path)))
            # Sockets, devices and fifos have no place in an image: skipped.

    walk(Path(src), "")
    # Byte order, not str order, so names that are not UTF-8 sort the same everywhere.
    # A parent always sorts before its children (a prefix sorts first).
    entries.sort(key=lambda e: os.fsencode(e.path))
    return entries


def normalized_prefix(prefix: str) -> str:
    """`prefix` as "a/b" (no leading or trailing slash); ValueError on "..", "." or ""."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    parts = stripped.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad layer prefix {prefix!r}")
    return "/".join(parts)


class HashingWriter:
    """A write-only file object that hashes and counts what passes, optionally forwarding."""

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self._hash = hashlib.sha256()
        self._sink = sink
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        if self._sink is not None:
            self._sink.write(data)
        return len(data)

    def tell(self) -> int:  # tarfile asks where it starts
        return self.size

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class _TeeReader:
    """Reads a file and copies every byte read into another, so the mirror matches the tar."""

    def __init__(self, source: BinaryIO, copy: BinaryIO) -> None:
        self._source = source
        self._copy = copy

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._copy.write(data)
        return data


_TAR_TYPES = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE}


def _tarinfo(name: str, kind: str, mode: int, size: int = 0, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = _TAR_TYPES[kind]
    info.mode = mode
    info.size = size if kind == "file" else 0
    info.linkname = target
    info.mtime = SOURCE_DATE_EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(
    entries: Iterable[Entry],
    out: BinaryIO | None = None,
    *,
    prefix: str = "",
    mirror: Path | None = None,
) -> TarStats:
    """Write the deterministic tar of `entries` to `out` (or only hash it) and return its stats.

    `prefix` puts every entry under that directory (with an entry for each of its
    directories first), as an image layer that must unpack under `app/` needs.
    `mirror`, an existing empty directory, receives the entries unpacked as they are
    written (modes, mtimes and, as root, owners as in the tar).
    """
    prefix = normalized_prefix(prefix)
    sink = HashingWriter(out)
    files = 0
    made_dirs: list[Path] = []
    # Fixed encoding: the host's locale must not change how names are written.
    tar = tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.GNU_FORMAT,
                          encoding="utf-8", errors="surrogateescape")
    with tar:
        if prefix:
            parts = prefix.split("/")
            for i in range(len(parts)):
                tar.addfile(_tarinfo("/".join(parts[: i + 1]), "dir", DIR_MODE))
        for entry in entries:
            name = f"{prefix}/{entry.path}" if prefix else entry.path
            info = _tarinfo(name, entry.kind, entry.mode, entry.size, entry.target)
            dest = mirror / entry.path if mirror is not None else None
            if entry.kind == "file":
                files += 1
                assert entry.source is not None
                with open(entry.source, "rb") as f:
                    if dest is None:
                        tar.addfile(info, f)
                    else:
                        with open(dest, "xb") as copy:
                            tar.addfile(info, _TeeReader(f, copy))
                        _settle(dest, entry.mode)
            else:
                tar.addfile(info)
                if dest is not None and entry.kind == "dir":
                    dest.mkdir(mode=0o700)
                    made_dirs.append(dest)
                elif dest is not None:
                    os.symlink(entry.target, dest)
                    _settle(dest, None)
    if mirror is not None:
        # Directories last: creating entries in one changes its mtime.
        for directory in [*reversed(made_dirs), Path(mirror)]:
            _settle(directory, DIR_MODE)
    return TarStats(digest=sink.digest(), size=sink.size, files=files)


def _settle(path: Path, mode: int | None) -> None:
    """Give a mirrored entry the mode, mtime and (as root) owner the tar records."""
    if mode is not None:
        os.chmod(path, mode)  # explicit: mkdir/open are subject to the umask
    if os.geteuid() == 0:
        os.lchown(path, 0, 0)
    os.utime(path, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)


def tar_stats(
    src: Path, include: Callable[[str], bool] | None = None, prefix: str = ""
) -> TarStats:
    """Digest, size and file count of the layer tar of `src`, without writing it anywhere."""
    return write_tar(scan(src, include), prefix=prefix)
