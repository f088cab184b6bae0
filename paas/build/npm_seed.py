"""The platform's npm seed: package tarballs from the public registry, shared by every
app's builds, so a new app's `npm ci` starts with a warm cache.

Only tarballs are shared, each stored under the sha512 of its bytes, and only the
platform writes them: the build worker, outside any build container, fetches what an
app's lockfile names from the registry (`PAAS_NPM_REGISTRY`, https://registry.npmjs.org
by default), checks each against the lockfile's integrity and stores it under that
digest, in cacache's content-v2 layout. The build sees the seed read-only
(`$PAAS_NPM_SEED`); the nodejs buildpack copies the tarballs its lockfile names into
the app's own npm cache, where `npm ci` finds each by the lockfile's integrity and
checks the bytes against it as it reads them. A build can neither write the seed nor
make another app install something else: whoever asks for a digest gets bytes with that
digest. npm's index and the registry's metadata, which map a name or URL to a version
and a digest and so could be poisoned, are never shared; they stay in each app's cache.

The pure part (which tarballs a lockfile names, which of them may be shared, where a
digest lives) is apart from the fetching and copying.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

REGISTRY = os.environ.get("PAAS_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
#: The lockfiles npm ci installs from (npm reads npm-shrinkwrap.json over the other).
LOCKFILES = ("npm-shrinkwrap.json", "package-lock.json")
#: A tarball larger than this is left to npm.
MAX_TARBALL_BYTES = 256 * 1024 * 1024
#: Parallel fetches from the registry.
FETCHERS = 8
#: Seconds to connect to the registry; one that does not answer ends the seeding.
CONNECT_TIMEOUT = 3.0
#: The longest a build waits for its seeding before it compiles without what is missing.
WAIT_SECONDS = 60.0
#: Seed tarballs no build has used for this many days are removed (`prune`).
KEEP_DAYS = float(os.environ.get("PAAS_NPM_SEED_KEEP_DAYS", "30"))
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Tarball:
    """One package tarball a lockfile names: where it comes from and its sha512 (hex)."""

    url: str
    digest: str


# --- the pure part ------------------------------------------------------------------------
def sha512_hex(integrity: str) -> str | None:
    """The sha512 digest (hex) in an npm integrity string (`sha512-<base64>`, maybe among
    other algorithms), or None without a valid one."""
    for part in integrity.split():
        algorithm, _, encoded = part.partition("-")
        if algorithm != "sha512":
            continue
        try:
            raw = base64.b64decode(encoded.split("?", 1)[0], validate=True)
        except (binascii.Error, ValueError):
            return None
        return raw.hex() if len(raw) == 64 else None
    return None


def lockfile_tarballs(text: str) -> list[Tarball]:
    """The tarballs a package-lock.json or npm-shrinkwrap.json names with a sha512
    integrity, each once; [] for anything that is not such a lockfile."""
    try:
        document = json.loads(text)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    entries: list[Any] = []
    packages = document.get("packages")
    if isinstance(packages, dict):  # lockfileVersion 2 and 3
        entries = [entry for path, entry in packages.items() if path]
    else:  # lockfileVersion 1: nested "dependencies"
        stack = [document.get("dependencies")]
        while stack:
            level = stack.pop()
            if isinstance(level, dict):
                for entry in level.values():
                    entries.append(entry)
                    if isinstance(entry, dict):
                        stack.append(entry.get("dependencies"))
    found: dict[str, Tarball] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("link") or entry.get("inBundle"):
            continue
        url, integrity = entry.get("resolved"), entry.get("integrity")
        if not isinstance(url, str) or not isinstance(integrity, str):
            continue
        digest = sha512_hex(integrity)
        if digest is not None and digest not in found:
            found[digest] = Tarball(url, digest)
    return list(found.values())


def shared(tarball: Tarball, registry: str = REGISTRY) -> bool:
    """Whether the seed may hold `tarball`: one on the platform's registry (the public one
    unless the operator names another). A package from any other registry (a private one
    an app authenticates to) stays in that app's own cache, and the platform fetches
    nothing from addresses an app chose."""
    want, got = urlsplit(registry), urlsplit(tarball.url)
    return (got.scheme == want.scheme and got.netloc == want.netloc and not got.query
            and not got.username and not got.password and ".." not in got.path.split("/")
            and got.path.startswith(want.path.rstrip("/") + "/"))


def content_path(root: Path, digest: str) -> Path:
    """Where cacache keeps the content of sha512 `digest` under `root` (its content-v2
    layout, which npm reads by the lockfile's integrity alone)."""
    return root / "sha512" / digest[:2] / digest[2:4] / digest[4:]


# --- the seed -------------------------------------------------------------------------------
class NpmSeed:
    def __init__(self, root: Path, registry: str | None = None) -> None:
        self.root = root
        self.registry = registry or REGISTRY

    def path(self, digest: str) -> Path:
        return content_path(self.root, digest)

    def missing(self, tarballs: Iterable[Tarball]) -> list[Tarball]:
        """The shareable tarballs of `tarballs` the seed does not hold yet."""
        return [t for t in tarballs
                if shared(t, self.registry) and not self.path(t.digest).exists()]

    def fetch(self, tarballs: Iterable[Tarball], timeout: float = 30.0) -> int:
        """Fetch the shareable tarballs the seed lacks from the registry, keeping each whose
        bytes match its digest; how many were added. A failure only leaves that one out:
        npm fetches it itself."""
        wanted = self.missing(tarballs)
        if not wanted:
            return 0
        unreachable = threading.Event()
        with requests.Session() as session:
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=FETCHERS)
            session.mount("https://", adapter)
            with ThreadPoolExecutor(min(FETCHERS, len(wanted))) as pool:
                added = pool.map(
                    lambda t: self._fetch_one(session, t, timeout, unreachable), wanted)
                return sum(added)

    def _fetch_one(self, session: requests.Session, tarball: Tarball, timeout: float,
                   unreachable: threading.Event) -> bool:
        # One fetch of a digest at a time, whichever process asks (the push starts one, the
        # build then waits for it): the lock is one of 256, by the digest's first byte.
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / tarball.digest[:2], "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path(tarball.digest).exists() or unreachable.is_set():
                return False
            try:
                with session.get(tarball.url, stream=True, timeout=(CONNECT_TIMEOUT, timeout),
                                 allow_redirects=False) as response:
                    if response.status_code != 200:
                        log.info("npm seed: %s answered %s", tarball.url, response.status_code)
                        return False
                    return self._store(tarball.digest, response.iter_content(_CHUNK))
            except (requests.ConnectionError, requests.Timeout) as exc:
                # The rest would wait as long: npm fetches them itself (through whatever
                # proxy the app's .npmrc names, say).
                unreachable.set()
                log.info("npm seed: %s is unreachable (%s); fetching no more",
                         self.registry, exc)
                return False
            except requests.RequestException as exc:
                log.info("npm seed: could not fetch %s: %s", tarball.url, exc)
                return False

    def _store(self, digest: str, chunks: Iterable[bytes]) -> bool:
        """Write `chunks` under `digest` if their sha512 is that digest."""
        final = self.path(digest)
        self._make_dirs(final.parent)
        staging = final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}")
        hasher, size = hashlib.sha512(), 0
        try:
            with open(staging, "wb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if size > MAX_TARBALL_BYTES:
                        return False
                    hasher.update(chunk)
                    f.write(chunk)
            if hasher.hexdigest() != digest:
                log.warning("npm seed: a tarball did not match the sha512 its lockfile names "
                            "(%s...); not kept", digest[:16])
                return False
            os.chmod(staging, 0o444)
            os.replace(staging, final)
            return True
        finally:
            staging.unlink(missing_ok=True)

    def _make_dirs(self, folder: Path) -> None:
        # Mode 0711 below the root: a build reads a tarball whose digest it knows, but
        # cannot list which packages other apps use.
        missing = []
        while not folder.is_dir() and folder != self.root:
            missing.append(folder)
            folder = folder.parent
        self.root.mkdir(parents=True, exist_ok=True)
        for made in reversed(missing):
            try:
                made.mkdir()
            except FileExistsError:
                continue
            os.chmod(made, 0o711)

    def verify(self, tarballs: Iterable[Tarball]) -> int:
        """Remove those of `tarballs` the seed holds whose bytes no longer match their
        digest (the disk's fault, or a hand's); how many went. They are fetched again."""
        removed = 0
        for tarball in tarballs:
            path = self.path(tarball.digest)
            try:
                with open(path, "rb") as f:
                    matches = hashlib.file_digest(f, "sha512").hexdigest() == tarball.digest
            except FileNotFoundError:
                continue
            if matches:
                now = time.time()
                os.utime(path, (now, now))  # last used, for prune
                continue
            log.warning("npm seed: %s does not match its digest; removed", path)
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def prune_daily(self) -> None:
        """`prune`, when the last one was over a day ago."""
        stamp = self.root / ".pruned"
        try:
            if time.time() - stamp.stat().st_mtime < 86400:
                return
        except FileNotFoundError:
            pass
        stamp.touch()
        self.prune()

    def prune(self, keep_days: float = KEEP_DAYS) -> int:
        """Remove the tarballs no build has used for `keep_days`; how many went."""
        cutoff = time.time() - keep_days * 86400
        removed = 0
        for path in (self.root / "sha512").glob("*/*/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class Seeding:
    """One build's seeding, started as soon as its code is checked out: the lockfile's
    tarballs the seed holds are checked, the missing ones fetched. The compile waits for
    it (`wait`) and copies them into the app's cache itself."""

    def __init__(self, seed: NpmSeed, tarballs: list[Tarball]) -> None:
        self.seed = seed
        self.tarballs = tarballs
        self.fetched = 0
        self._thread = threading.Thread(target=self._run, name="npm-seed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.seed.verify(self.tarballs)
            self.fetched = self.seed.fetch(self.tarballs)
            self.seed.prune_daily()
        except OSError as exc:  # a full disk, say: the build goes on without the seed
            log.warning("npm seed: %s", exc)

    def wait(self, timeout: float = WAIT_SECONDS) -> None:
        self._thread.join(timeout)


def start(seed_root: Path, app_dir: Path, registry: str | None = None) -> Seeding | None:
    """Begin seeding for the app checked out at `app_dir` from `registry` (default
    `REGISTRY`): None when it has no npm lockfile naming tarballs."""
    for name in LOCKFILES:
        lockfile = app_dir / name
        if lockfile.is_file() and not lockfile.is_symlink():
            return seed_from(seed_root, lockfile.read_text(errors="replace"), registry)
    return None


def seed_from(seed_root: Path, lockfile: str, registry: str | None = None) -> Seeding | None:
    """Begin seeding what the text of an npm lockfile names; None when it names nothing."""
    tarballs = lockfile_tarballs(lockfile)
    if not tarballs:
        return None
    seed_root.mkdir(parents=True, exist_ok=True)  # mounted in the build as it is
    return Seeding(NpmSeed(seed_root, registry), tarballs)


__all__ = ["LOCKFILES", "NpmSeed", "Seeding", "Tarball", "content_path", "lockfile_tarballs",
           "seed_from", "sha512_hex", "shared", "start"]
