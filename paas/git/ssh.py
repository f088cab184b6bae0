"""The git-over-SSH process (`python -m paas.git.ssh`, started by `paas up`).

An asyncssh server on $PAAS_SSH_PORT: a client is authenticated by its public key
alone (the key names the user, `paas keys:add`), and may then run
`git-receive-pack` or `git-upload-pack` on an app it may reach; a shell, other
commands, subsystems (sftp) and forwarding are refused with one line. Each git
command runs in a thread of its own with the blocking dulwich handlers of
`paas.git.service`, which reach the SSH channel through `ChannelIO`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import redis
from asyncssh.stream import SSHReader, SSHServerStreamSession, SSHWriter

from paas import keys
from paas.config import Settings, redis_client, settings
from paas.errors import PaasError
from paas.git import service
from paas.store import Store, User

log = logging.getLogger("paas.ssh")

T = TypeVar("T")

FORWARDING_REFUSED = "paas serves only git over SSH: no port forwarding."
SUBSYSTEM_REFUSED = "paas serves only git over SSH: no {name} (push and fetch with git)."
HEARTBEAT_INTERVAL = 1.0


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key, made (ed25519) the first time and kept from then on."""
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        pass
    key = asyncssh.generate_private_key("ssh-ed25519")
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    os.replace(partial, path)  # a crash mid-write leaves no half key behind
    log.info("made the SSH host key %s", path)
    return key


class ChannelIO:
    """Blocking reads and writes on an SSH session's streams, for a thread that is not the
    event loop's: each call runs on the loop and waits for it, so writes keep their order
    and a slow client slows the writer down instead of filling memory."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stdin: SSHReader[bytes],
                 stdout: SSHWriter[bytes], stderr: SSHWriter[bytes]) -> None:
        self.loop = loop
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr

    def _call(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()  # type: ignore[arg-type]

    def recv(self, size: int) -> bytes:
        return self._call(self.stdin.read(size))

    def write(self, data: bytes) -> None:
        self._call(self._send(self.stdout, data))

    def error(self, message: str) -> None:
        self._call(self._send(self.stderr, message.encode() + b"\n"))

    @staticmethod
    async def _send(stream: SSHWriter[bytes], data: bytes) -> None:
        stream.write(data)
        await stream.drain()


async def in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a daemon thread of its own: a push can take many minutes, so a pool
    could run out, and a daemon thread never holds up the process's exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if done.cancelled():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="git-session", daemon=True).start()
    return await done


class GitSession(SSHServerStreamSession):
    """A session that runs the handler for shells and exec requests, and answers every
    subsystem (sftp and the like) with a line on stderr and exit status 1.

    The subsystem is accepted first and refused once started: OpenSSH's client exits
    at once on a failed request, before it prints what stderr brought just before."""

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:  # type: ignore[override]
        super().connection_made(chan)
        self._channel = chan

    def subsystem_requested(self, subsystem: str) -> bool:
        return True

    def session_started(self) -> None:
        subsystem = self._channel.get_subsystem()
        if subsystem is None:
            super().session_started()
            return
        self._channel.write_stderr(SUBSYSTEM_REFUSED.format(name=subsystem[:40]).encode()
                                   + b"\n")
        self._channel.exit(1)


class GitSSHServer(asyncssh.SSHServer):
    """One per connection: finds the user by the key the client signs with."""

    def __init__(self, git: GitService) -> None:
        self.git = git
        self.user: User | None = None
        self.peer = "?"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def begin_auth(self, username: str) -> bool:
        return True  # who pushes is told by the key, whatever the user name (`git@`)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Called for each key the client offers and again for the one it signs with,
        # which is the last call before authentication succeeds: so the last user wins.
        self.user = self.git.store.user_for_ssh_key(key.get_fingerprint("sha256"))
        return self.user is not None

    def session_requested(self) -> GitSession:
        assert self.user is not None  # asyncssh opens sessions only once authenticated
        return GitSession(functools.partial(self.git.session, self.user))

    def connection_requested(self, *args: Any) -> bool:
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                        FORWARDING_REFUSED)

    def unix_connection_requested(self, dest_path: str) -> bool:
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                        FORWARDING_REFUSED)


class GitService:
    """What every connection of the server shares: settings, the store and Redis."""

    def __init__(self, s: Settings, store: Store, r: redis.Redis) -> None:
        self.s = s
        self.store = store
        self.r = r

    async def session(self, user: User, stdin: SSHReader[bytes], stdout: SSHWriter[bytes],
                      stderr: SSHWriter[bytes]) -> None:
        channel = stdout.channel
        io = ChannelIO(asyncio.get_running_loop(), stdin, stdout, stderr)
        command = channel.get_command()
        failure = b""
        try:
            status = await in_thread(functools.partial(self._run, user, command, io))
        except (OSError, asyncssh.Error) as exc:
            # The client went away mid-command; dulwich has already cleaned up.
            log.info("git session of %s ended early: %s", user.name, exc)
            status = 1
        except Exception:
            # A client speaking bad git, or a bug: the pusher gets a line, the log the rest,
            # and the channel still closes instead of leaving git waiting.
            log.exception("git session of %s (%r) failed", user.name, command)
            failure = b"paas: the git command failed on the server; its log says why\n"
            status = 1
        try:
            if failure:
                stderr.write(failure)
            channel.exit(status)
        except OSError:
            log.info("%s left before the exit status of their git session", user.name)

    def _run(self, user: User, command: str | None, io: ChannelIO) -> int:
        if not command:
            io.error(service.shell_refusal(user))
            return 1
        try:
            service.serve(command, user, self.store, self.r, self.s.repo_path, io.recv, io.write)
        except PaasError as exc:
            io.error(exc.message)
            return 1
        return 0


async def _heartbeat(r: redis.Redis) -> None:
    beat = functools.partial(r.set, keys.heartbeat("ssh"), "up", ex=5)
    while True:
        try:
            await asyncio.to_thread(beat)
        except (redis.RedisError, OSError) as exc:
            log.warning("cannot write the heartbeat: %s", exc)
        await asyncio.sleep(HEARTBEAT_INTERVAL)


async def listen(git: GitService, host: str, port: int) -> asyncssh.SSHAcceptor:
    """Start accepting connections on `host` and `port` (0: any free port)."""
    host_key = load_host_key(git.s.ssh_host_key_path)
    server = await asyncssh.create_server(
        functools.partial(GitSSHServer, git), host, port,
        server_host_keys=[host_key], encoding=None, allow_pty=False,
        agent_forwarding=False, x11_forwarding=False, keepalive_interval=30,
        login_timeout=30,
    )
    log.info("git over SSH on port %d, host key %s", server.get_port(),
             host_key.get_fingerprint("sha256"))
    return server


async def serve(s: Settings, host: str = "") -> None:
    """Listen on `host` (all interfaces by default) and $PAAS_SSH_PORT until SIGTERM."""
    assert s.ssh_port
    git = GitService(s, Store(s.db_path), redis_client(s))
    server = await listen(git, host, s.ssh_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    beating = asyncio.create_task(_heartbeat(git.r))
    await stop.wait()
    log.info("git over SSH stopping")
    beating.cancel()
    server.close()
    await server.wait_closed()
    git.r.delete(keys.heartbeat("ssh"))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ssh %(levelname)s %(message)s")
    # Both would log a few lines per connection or push otherwise.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("dulwich").setLevel(logging.WARNING)
    try:
        s = settings()
    except PaasError as exc:
        log.error("%s", exc.message)
        return 1
    if not s.ssh_port:
        log.info("PAAS_SSH_PORT is off; not serving git over SSH")
        return 0
    try:
        asyncio.run(serve(s))
    except OSError as exc:  # the port is taken, most likely: a line, not a traceback
        log.error("cannot listen on port %d: %s", s.ssh_port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
