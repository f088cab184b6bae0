"""The receive-pack handler that turns a push to the deploy branch into a deploy.

dulwich stores the pack, then asks `_on_update` about each ref before moving
it. For `main` or `master` that is where the build runs: its output streams to
the pusher over the git sideband as `remote:` lines, and a failed build or
deploy answers the ref with `ng`, so git prints `! [remote rejected]` and the
branch (like the running app) stays where it was.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from dulwich.protocol import SIDE_BAND_CHANNEL_DATA, SIDE_BAND_CHANNEL_PROGRESS, Protocol
from dulwich.repo import Repo
from dulwich.server import Backend, ReceivePackHandler

from paas import keys
from paas.build import jobs, npm_seed, output, worker
from paas.config import settings
from paas.store import App, Store, User

log = logging.getLogger(__name__)

DEPLOY_REFS = (b"refs/heads/main", b"refs/heads/master")
ZERO_SHA = b"0" * 40
#: How long a push waits for another push to the same app to finish.
LOCK_WAIT = 600.0
#: A push whose build prints nothing for this long gets a keepalive packet.
KEEPALIVE_SECONDS = 10.0


@dataclass
class PushContext:
    app: App
    user: User
    store: Store
    r: redis.Redis


class AppBackend(Backend):
    """Serves exactly one app's repository, whatever path dulwich asks for."""

    def __init__(self, repo_path: str, ctx: PushContext) -> None:
        self.repo_path = repo_path
        self.ctx = ctx

    def open_repository(self, path: str) -> Repo:
        return Repo(self.repo_path)


class DeployingReceivePackHandler(ReceivePackHandler):
    def __init__(self, backend: AppBackend, args: list[bytes], proto: Protocol,
                 **kwargs: bool) -> None:
        super().__init__(backend, args, proto, **kwargs)
        self.ctx = backend.ctx
        self._lock: redis.lock.Lock | None = None

    def _apply_pack(self, refs: list) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[override]
        try:
            yield from super()._apply_pack(refs)
        finally:
            if self._lock is not None:
                try:
                    self._lock.release()
                except redis.exceptions.LockError:
                    log.warning("push lock of %s had expired", self.ctx.app.name)
                self._lock = None

    def _keepalive(self) -> None:
        """An empty data packet, as git's own receive-pack sends (receive.keepAlive): it
        keeps proxies and the router from closing a quiet connection during a long step."""
        if self.has_capability(b"side-band-64k") or self.has_capability(b"side-band"):
            self.proto.write_pkt_line(bytes([SIDE_BAND_CHANNEL_DATA]))

    def _progress(self, text: str) -> None:
        if self.has_capability(b"side-band-64k") or self.has_capability(b"side-band"):
            self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, text.encode() + b"\n")

    def _on_update(self, ref: bytes, old_sha: bytes, new_sha: bytes) -> bytes | None:
        if ref not in DEPLOY_REFS:
            if new_sha != ZERO_SHA:
                self._progress(f"Stored {ref.decode()}; only main and master deploy.")
            return None
        if new_sha == ZERO_SHA:
            return b"the deploy branch cannot be deleted; destroy the app instead"
        reason = self._deploy(ref, old_sha, new_sha)
        return reason.encode() if reason else None

    def _deploy(self, ref: bytes, old_sha: bytes, new_sha: bytes) -> str | None:
        """Build and release `new_sha`; the rejection reason, or None when it serves."""
        app = self.ctx.app
        if not self._acquire_lock():
            return f"another push to {app.name} is still deploying; push again when it finishes"
        current = self.repo.refs.as_dict().get(ref, ZERO_SHA)
        if current != old_sha:
            return f"{ref.decode()} moved while this push waited; fetch, merge and push again"
        build = self.ctx.store.create_build(app, self.ctx.user, new_sha.decode(), ref.decode())
        output.reset(self.ctx.r, build.id)
        worker.enqueue(self.ctx.r, build.id, app.name)
        self._prefetch_npm_packages(new_sha)
        allowed = jobs.BUILD_TIMEOUT + jobs.DEPLOY_TIMEOUT + 120
        deadline = time.monotonic() + allowed
        last_sent = time.monotonic()
        for item in output.follow(self.ctx.r, build.id):
            if isinstance(item, output.BuildEnd):
                if item.status == "succeeded":
                    # Clones check out the branch that deploys.
                    self.repo.refs.set_symbolic_ref(b"HEAD", ref)
                    return None
                return item.reason or "build failed"
            if item is not None:
                self._progress(item)
                last_sent = time.monotonic()
                continue
            if self._waiting_in_queue(build.id):
                # Behind another build (of this app, or of others on a busy worker): its
                # time starts when a worker takes it, and the push lock is kept as long.
                deadline = time.monotonic() + allowed
                self._keep_lock()
            if time.monotonic() > deadline:
                return "the build did not finish in time; is the build worker running?"
            if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
                self._keepalive()
                last_sent = time.monotonic()
        return "build failed"

    def _prefetch_npm_packages(self, sha: bytes) -> None:
        """Start fetching the packages the pushed npm lockfile names into the platform's
        npm seed while the build is queued and starts; the build waits for what is left
        of it (paas/build/npm_seed.py)."""
        try:
            if jobs.no_cache_requested(self.ctx.store.config_vars(self.ctx.app)):
                return
            lockfile = _top_level_file(self.repo, sha, npm_seed.LOCKFILES)
            if lockfile is not None:
                npm_seed.seed_from(settings().npm_seed_dir,
                                   lockfile.decode("utf-8", "replace"))
        except (KeyError, ValueError, OSError) as exc:  # the build fetches what it needs
            log.warning("npm seed prefetch for %s: %s", self.ctx.app.name, exc)

    def _keep_lock(self) -> None:
        if self._lock is None:
            return
        try:
            self._lock.reacquire()  # its full timeout again, from now
        except redis.exceptions.LockError:
            log.warning("push lock of %s had expired while its build waited",
                        self.ctx.app.name)

    def _waiting_in_queue(self, build_id: int) -> bool:
        """Not started yet while a worker is there to start it."""
        return (self.ctx.store.build(build_id).status == "pending"
                and worker.running(self.ctx.r))

    def _acquire_lock(self) -> bool:
        lock = self.ctx.r.lock(
            keys.push_lock(self.ctx.app.name),
            timeout=jobs.BUILD_TIMEOUT + jobs.DEPLOY_TIMEOUT + 300,
        )
        if not lock.acquire(blocking=False):
            self._progress(f"-----> Another push to {self.ctx.app.name} is deploying; "
                           "waiting for it to finish")
            deadline = time.monotonic() + LOCK_WAIT
            while not lock.acquire(blocking=True, blocking_timeout=KEEPALIVE_SECONDS):
                if time.monotonic() > deadline:
                    return False
                self._keepalive()
        self._lock = lock
        return True


def _top_level_file(repo: Repo, sha: bytes, names: tuple[str, ...],
                    limit: int = 64 * 1024 * 1024) -> bytes | None:
    """The first of `names` that is a regular file at the top of commit `sha`, if under
    `limit` bytes."""
    tree = repo[repo[sha].tree]
    for name in names:
        try:
            mode, blob_sha = tree[name.encode()]
        except KeyError:
            continue
        if not stat.S_ISREG(mode):
            return None
        blob = repo[blob_sha]
        return blob.as_raw_string() if blob.raw_length() <= limit else None
    return None
