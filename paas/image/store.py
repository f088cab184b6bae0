"""The content-addressed image store under $PAAS_HOME/images.

    layers/<hex>/       a layer, unpacked once, never written again (owned by root,
                        modes and mtimes as in its tar)
    layers/<hex>.json   {"digest", "size", "files"}; written last, it marks the layer complete
    images/<hex>.json   an image: canonical JSON of its layer digests and config,
                        <hex> being the sha256 of exactly those bytes
    .lock               flock: shared while adding, exclusive while collecting garbage

Layer tars are not kept: `paas.image.layers` regenerates them byte for byte from the
unpacked tree (the OCI export does), so a redeploy that changes only code costs about
the size of the code on disk, and a runtime can use `layer_path()` as a read-only lower
directory without unpacking anything. A layer's digest is that of its tar without any
prefix (paths as they sit under /app); `paas.image.oci` adds the `app/` prefix at export.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paas.errors import InvalidInput, NotFound
from paas.image.layers import TarStats, scan, write_tar

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_FORMAT = 1  # bump if the image JSON changes shape (it changes every id)


class LayerNotFound(NotFound):
    id = "layer_not_found"


class ImageNotFound(NotFound):
    id = "image_not_found"


@dataclass(frozen=True)
class ImageConfig:
    """How to run an image: what an OCI image config's `config` object says."""

    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] | None = None
    working_dir: str = "/app"
    exposed_ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.env.items():
            if not (isinstance(name, str) and _ENV_NAME.fullmatch(name)) or not isinstance(
                value, str
            ):
                raise InvalidInput(f"image env {name!r}={value!r} is not NAME=string")
        if self.cmd is not None and not all(isinstance(a, str) for a in self.cmd):
            raise InvalidInput(f"image cmd {self.cmd!r} must be a list of strings")
        if not self.working_dir.startswith("/"):
            raise InvalidInput(f"image working_dir {self.working_dir!r} must be absolute")
        for port in self.exposed_ports:
            if not re.fullmatch(r"\d{1,5}(/(tcp|udp|sctp))?", port):
                raise InvalidInput(f"exposed port {port!r} is not like 5000 or 5000/tcp")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()):
            raise InvalidInput("image labels must map strings to strings")

    def to_dict(self) -> dict[str, Any]:
        return {
            "cmd": None if self.cmd is None else list(self.cmd),
            "env": dict(self.env),
            "exposed_ports": list(self.exposed_ports),
            "labels": dict(self.labels),
            "working_dir": self.working_dir,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageConfig:
        return cls(
            env=dict(data["env"]),
            cmd=None if data["cmd"] is None else list(data["cmd"]),
            working_dir=data["working_dir"],
            exposed_ports=list(data["exposed_ports"]),
            labels=dict(data["labels"]),
        )


@dataclass(frozen=True)
class Image:
    id: str  # "sha256:<hex>" of its canonical JSON
    layers: list[str]  # layer digests, bottom first
    config: ImageConfig


@dataclass(frozen=True)
class GcResult:
    removed_images: list[str]
    removed_layers: list[str]
    freed_bytes: int


def canonical_json(data: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, ASCII only."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest_hex(digest: str) -> str:
    """The hex of a "sha256:<hex>" digest; InvalidInput for anything else."""
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise InvalidInput(f"{digest!r} is not a digest like sha256:<64 hex digits>")
    return match.group(1)


class ImageStore:
    """Layers and images, content-addressed, under one root ($PAAS_HOME/images)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._layers = self.root / "layers"
        self._images = self.root / "images"
        self._layers.mkdir(parents=True, exist_ok=True)
        self._images.mkdir(parents=True, exist_ok=True)

    # --- layers ----------------------------------------------------------------------------

    def add_layer(self, src: Path, include: Callable[[str], bool] | None = None) -> str:
        """Store the layer of the tree at `src` (only the top-level names `include`
        accepts, when given) and return its digest; a layer already stored costs nothing."""
        entries = scan(Path(src), include)
        with self._locked(fcntl.LOCK_SH):
            # Hash first, writing nothing: on a redeploy most layers are already here.
            digest = write_tar(entries).digest
            if self.has_layer(digest):
                return digest
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self._layers))
            try:
                # Unpack while hashing again: the tree kept is exactly what was hashed,
                # even if `src` changed since the first pass.
                stats = write_tar(entries, mirror=tmp)
                # Without this a power cut could leave a renamed tree with empty files.
                os.sync()
                final = self._layers / digest_hex(stats.digest)
                try:
                    os.rename(tmp, final)
                except OSError as e:
                    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
                        raise
                    # Someone committed the same layer first; theirs is as good as ours.
                    _remove_tree(tmp)
            except BaseException:
                if tmp.exists():
                    _remove_tree(tmp)
                raise
            self._write_layer_meta(stats)
            return stats.digest

    def has_layer(self, digest: str) -> bool:
        hex_ = digest_hex(digest)
        return (self._layers / f"{hex_}.json").is_file() and (self._layers / hex_).is_dir()

    def layer_path(self, digest: str) -> Path:
        """The unpacked tree of a stored layer (read-only: never write under it)."""
        if not self.has_layer(digest):
            raise LayerNotFound(
                f"layer {digest} is not in the image store at {self.root}; "
                "rebuild the app to recreate it"
            )
        return self._layers / digest_hex(digest)

    def layer_size(self, digest: str) -> int:
        """Bytes of the layer's (uncompressed) tar."""
        return int(self._layer_meta(digest)["size"])

    def layer_files(self, digest: str) -> int:
        """Regular files in the layer."""
        return int(self._layer_meta(digest)["files"])

    def verify_layer(self, digest: str) -> bool:
        """Whether the stored tree still regenerates exactly the tar it was named after."""
        return write_tar(scan(self.layer_path(digest))).digest == digest

    def layers(self) -> list[str]:
        """Digests of every complete layer, sorted."""
        return sorted(
            f"sha256:{p.stem}"
            for p in self._layers.glob("*.json")
            if _DIGEST.fullmatch(f"sha256:{p.stem}") and (self._layers / p.stem).is_dir()
        )

    # --- images ----------------------------------------------------------------------------

    def save_image(self, layers: list[str], config: ImageConfig) -> str:
        """Record an image (layer digests bottom first, plus config) and return its id."""
        for digest in layers:
            digest_hex(digest)
        data = canonical_json(
            {"config": config.to_dict(), "format": _IMAGE_FORMAT, "layers": list(layers)}
        )
        hex_ = hashlib.sha256(data).hexdigest()
        with self._locked(fcntl.LOCK_SH):
            # Under the lock, so gc cannot take a layer between this check and the write.
            missing = [d for d in layers if not self.has_layer(d)]
            if missing:
                raise LayerNotFound(
                    f"layers {', '.join(missing)} are not in the image store; rebuild the app"
                )
            path = self._images / f"{hex_}.json"
            if not path.exists():
                write_atomic(path, data)
        return f"sha256:{hex_}"

    def image(self, image_id: str) -> Image:
        hex_ = digest_hex(image_id)
        try:
            data = (self._images / f"{hex_}.json").read_bytes()
        except FileNotFoundError:
            raise ImageNotFound(
                f"image {image_id} is not in the image store at {self.root}; "
                "rebuild the app to recreate it"
            ) from None
        if hashlib.sha256(data).hexdigest() != hex_:
            raise ImageNotFound(f"image {image_id} is damaged on disk; rebuild the app")
        doc = json.loads(data)
        return Image(id=image_id, layers=list(doc["layers"]),
                     config=ImageConfig.from_dict(doc["config"]))

    def images(self) -> list[str]:
        """Ids of every stored image, sorted."""
        return sorted(
            f"sha256:{p.stem}"
            for p in self._images.glob("*.json")
            if _DIGEST.fullmatch(f"sha256:{p.stem}")
        )

    # --- garbage collection ------------------------------------------------------------------

    def gc(self, keep_images: Iterable[str], keep_layers: Iterable[str] = ()) -> GcResult:
        """Remove every image not in `keep_images` and every layer neither used by a kept
        image nor in `keep_layers`.

        Callers must keep the images of every release that may still run and of builds
        in progress (or those builds' layers): anything else goes.
        """
        keep = {f"sha256:{digest_hex(i)}" for i in keep_images}
        live = {f"sha256:{digest_hex(d)}" for d in keep_layers}
        removed_images: list[str] = []
        removed_layers: list[str] = []
        freed = 0
        with self._locked(fcntl.LOCK_EX):
            for image_id in self.images():
                path = self._images / f"{digest_hex(image_id)}.json"
                if image_id in keep:
                    # A damaged kept image raises here rather than losing its layers.
                    live.update(self.image(image_id).layers)
                else:
                    freed += disk_usage(path)
                    path.unlink()
                    removed_images.append(image_id)
            for hex_ in sorted(self._stored_layer_hexes()):
                if f"sha256:{hex_}" not in live:
                    freed += self._remove_layer(hex_)
                    removed_layers.append(f"sha256:{hex_}")
            # No add holds the lock now, so any temp or trash entry is a crash's leftover.
            for folder in (self._layers, self._images):
                for pattern in (".tmp-*", ".trash-*"):
                    for leftover in folder.glob(pattern):
                        freed += disk_usage(leftover)
                        if leftover.is_dir() and not leftover.is_symlink():
                            _remove_tree(leftover)
                        else:
                            leftover.unlink()
        return GcResult(removed_images, removed_layers, freed)

    def recent(self, seconds: float) -> tuple[set[str], set[str]]:
        """Images and layers saved in the last `seconds`: a build in progress may not have
        recorded them in a release yet."""
        cutoff = time.time() - seconds
        images = {i for i in self.images()
                  if (self._images / f"{digest_hex(i)}.json").stat().st_mtime > cutoff}
        layers = {f"sha256:{h}" for h in self._stored_layer_hexes()
                  if (self._layers / f"{h}.json").exists()
                  and (self._layers / f"{h}.json").stat().st_mtime > cutoff}
        return images, layers

    def disk_usage(self) -> int:
        """Bytes of disk used under the root (blocks, each inode counted once)."""
        return disk_usage(self.root)

    # --- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, how)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _layer_meta(self, digest: str) -> dict[str, Any]:
        try:
            return json.loads((self._layers / f"{digest_hex(digest)}.json").read_bytes())
        except FileNotFoundError:
            raise LayerNotFound(f"layer {digest} is not in the image store at {self.root}; "
                                "rebuild the app to recreate it") from None

    def _write_layer_meta(self, stats: TarStats) -> None:
        meta = {"digest": stats.digest, "files": stats.files, "size": stats.size}
        write_atomic(self._layers / f"{digest_hex(stats.digest)}.json", canonical_json(meta))

    def _stored_layer_hexes(self) -> set[str]:
        """Every layer with a tree or a marker, complete or not."""
        names = {p.name.removesuffix(".json") for p in self._layers.iterdir()}
        return {n for n in names if re.fullmatch(r"[0-9a-f]{64}", n)}

    def _remove_layer(self, hex_: str) -> int:
        """Remove one layer; return the bytes it used."""
        meta, tree = self._layers / f"{hex_}.json", self._layers / hex_
        freed = 0
        if meta.exists():
            freed += disk_usage(meta)
            meta.unlink()  # first: from here on the layer is not "there"
        if tree.exists():
            freed += disk_usage(tree)
            # Renamed away in one step, so a crash mid-delete never leaves a partial tree
            # under the layer's name (the next gc sweeps the trash).
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self._layers))
            os.rename(tree, trash / hex_)
            _remove_tree(trash)
        return freed


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _remove_tree(path: Path) -> None:
    """rmtree that also empties trees whose directories were made read-only."""
    try:
        shutil.rmtree(path)
    except PermissionError:
        # Only needed when not root: a directory without u+w cannot be emptied.
        # Symlinks are skipped: chmod would follow them out of the tree.
        os.chmod(path, 0o700)
        for dirpath, dirnames, _files in os.walk(path):
            for name in dirnames:
                child = os.path.join(dirpath, name)
                if not os.path.islink(child):
                    os.chmod(child, 0o700)
        shutil.rmtree(path)


def disk_usage(path: Path) -> int:
    """Bytes of disk used by `path` and all under it (allocated blocks, inodes once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [os.fspath(path)]
    while stack:
        current = stack.pop()
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
        if os.path.isdir(current) and not os.path.islink(current):
            with os.scandir(current) as it:
                stack.extend(entry.path for entry in it)
    return total
