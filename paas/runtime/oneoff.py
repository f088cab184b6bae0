"""One-off dynos (`paas run`): a command in the image of a release, its stdio the caller's.

A one-off gets what a web dyno of the same release gets (the image's layers under /app,
the release's config vars, the app's uid, the same isolation and limits), except $PORT,
and it runs in the foreground: with the runc driver a `runc run` without --detach, with
the process driver bash in a private copy of the layers, in a session of its own. The
caller passes the file descriptors for stdin, stdout and stderr; when stdin is a terminal
the command gets a terminal too. `stop_one_off` always ends it and removes its files.

The second half is the wire format of an attached one-off (`POST /api/apps/APP/dynos`
upgraded to `paas-run`): frames of 1 byte type, 4 bytes big-endian length, payload.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from paas import sizes
from paas.config import Settings
from paas.runtime import DynoSpec
from paas.runtime.stacks import DEFAULT_STACK

if TYPE_CHECKING:
    from paas.store import App, Release

#: Runs the command as a child of bash (PID 1 of a container ignores the signals it has no
#: handler for). With a terminal, job control makes the command the terminal's foreground
#: process group, so Ctrl-C reaches it and interactive shells get job control.
LAUNCHER = r"""
cd "$HOME" || exit 1
for f in "$HOME"/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done
unset f
if [ -t 0 ]; then set -m; fi
/bin/bash -c "$1"
status=$?
exit "$status"
"""
# The process driver's command runs in a new session without a controlling terminal;
# this makes its stdin (a terminal) the controlling one before bash starts.
_TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
RUNC = "runc"
#: The one-offs this process started and has not stopped yet, by pid.
_running: dict[int, tuple[Settings, DynoSpec, subprocess.Popen[bytes]]] = {}
_running_lock = threading.Lock()


# --- what runs ------------------------------------------------------------------------
def release_image(release: Release, settings: Settings) -> tuple[tuple[Path, ...], str]:
    """The unpacked layer trees of the release's image (bottom first) and its stack; the
    same answer as the agent's `_image_parts`, which is private to it."""
    if not release.slug:
        raise ValueError(f"release v{release.version} has nothing to run")
    if release.slug.startswith("sha256:"):
        from paas.image import image_store

        images = image_store(settings)
        image = images.image(release.slug)
        layers = tuple(images.layer_path(digest) for digest in image.layers)
        return layers, image.config.labels.get("paas.stack", DEFAULT_STACK)
    return (Path(release.slug),), DEFAULT_STACK  # a plain directory: releases before images


def one_off_spec(settings: Settings, app: App, release: Release, number: int,
                 command: str) -> DynoSpec:
    """The DynoSpec of `run.N`: the release's image and config vars, no port, the default
    size (Heroku's too)."""
    layers, stack = release_image(release, settings)
    name = f"run.{number}"
    return DynoSpec(
        id=f"{app.name}.{name}.{secrets.token_hex(3)}",
        app=app.name, name=name, type="run", release=release.version, restart_seq=0,
        layers=layers, stack=stack, command=command, env=dict(release.config), port=None,
        uid=app.uid, limits=sizes.limits(sizes.DEFAULT_SIZE),
    )


def one_off_dir(settings: Settings, spec: DynoSpec) -> Path:
    """Its working folder, where the drivers keep their dynos' (without a state file, so no
    agent takes it for a dyno of its own)."""
    return settings.dynos_dir / spec.app / spec.id


def container_id(spec: DynoSpec) -> str:
    return f"paas-{spec.id}"  # as RuncDriver names its containers


# --- running and ending ------------------------------------------------------------------
def run_one_off(settings: Settings, spec: DynoSpec, stdin_fd: int, stdout_fd: int,
                stderr_fd: int) -> subprocess.Popen[bytes]:
    """Start the one-off in the foreground with the given stdio; a terminal as stdin gives
    the command a terminal. The caller closes its copies of the fds and ends with
    `stop_one_off`, whatever happens."""
    workdir = one_off_dir(settings, spec)
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        if settings.runtime == "runc":
            proc = _start_runc(settings, spec, workdir, stdin_fd, stdout_fd, stderr_fd)
        else:
            proc = _start_process(spec, workdir, stdin_fd, stdout_fd, stderr_fd)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    with _running_lock:
        _running[proc.pid] = (settings, spec, proc)
    return proc


def _env(spec: DynoSpec, home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **spec.env,
            "HOME": home, "DYNO": spec.name}


def _start_runc(settings: Settings, spec: DynoSpec, workdir: Path, stdin_fd: int,
                stdout_fd: int, stderr_fd: int) -> subprocess.Popen[bytes]:
    from paas.runtime.runc import RuncDriver

    driver = RuncDriver(settings.home)
    config = driver.bundle(spec, workdir, launcher=LAUNCHER)
    if os.isatty(stdin_fd):
        # A foreground runc hands the container pipes, never its own fds, so a terminal
        # must be runc's: it makes one inside (the command's controlling terminal), relays
        # it to our stdio and resizes it from our stdin on SIGWINCH.
        config["process"]["terminal"] = True
        # runc resizes that terminal from ours only once the command has started, which
        # a first `stty size` could beat (it read 0 0): the OCI consoleSize gives the
        # terminal our size before the command runs.
        rows, cols = termios.tcgetwinsize(stdin_fd)
        if rows and cols:
            config["process"]["consoleSize"] = {"height": rows, "width": cols}
    (workdir / "bundle" / "config.json").write_text(json.dumps(config))
    state_root = settings.run_dir / "runc"
    state_root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [RUNC, "--root", str(state_root), "--log", str(workdir / "runc.log"), "run",
         "--bundle", str(workdir / "bundle"), container_id(spec)],
        stdin=stdin_fd, stdout=stdout_fd, stderr=stderr_fd,
    )


def _start_process(spec: DynoSpec, workdir: Path, stdin_fd: int, stdout_fd: int,
                   stderr_fd: int) -> subprocess.Popen[bytes]:
    app_dir = workdir / "app"
    app_dir.mkdir(parents=True)
    for layer in spec.layers:  # a private copy, so the one-off's writes stay its own
        subprocess.run(["cp", "-a", "--reflink=auto", f"{layer}/.", str(app_dir)], check=True)
        app_dir.chmod(0o755)
    argv = ["/bin/bash", "-c", LAUNCHER, "launcher", spec.command]
    if os.isatty(stdin_fd):
        argv = [sys.executable, "-I", "-c", _TAKE_TERMINAL, *argv]
    return subprocess.Popen(
        argv, cwd=app_dir, env=_env(spec, str(app_dir)),
        stdin=stdin_fd, stdout=stdout_fd, stderr=stderr_fd, start_new_session=True,
    )


def resize_one_off(proc: subprocess.Popen[bytes], master_fd: int, rows: int,
                   cols: int) -> None:
    """Set the terminal's size. The kernel tells a process driver's command; runc learns it
    from SIGWINCH and passes it on to the terminal inside the container."""
    termios.tcsetwinsize(master_fd, (rows, cols))
    if proc.poll() is None:
        proc.send_signal(signal.SIGWINCH)


def stop_one_off(settings: Settings, spec: DynoSpec, proc: subprocess.Popen[bytes]) -> int:
    """Kill whatever of the one-off still runs, then remove its container and files. Returns
    its exit status (128+N when signal N ended it)."""
    if settings.runtime == "runc":
        _stop_container(settings, spec, proc)
    else:
        _kill_session(proc.pid)  # what its command left behind, even once it has ended
        proc.wait()
    shutil.rmtree(one_off_dir(settings, spec), ignore_errors=True)
    with _running_lock:
        _running.pop(proc.pid, None)
    return exit_status(proc.returncode)


@atexit.register
def stop_all_one_offs() -> None:
    """Stop the one-offs still running when this process exits (a web worker stopping
    gracefully), so none outlives the thread that relayed it."""
    with _running_lock:
        left = list(_running.values())
    for settings, spec, proc in left:
        stop_one_off(settings, spec, proc)


def sweep_one_offs(settings: Settings) -> list[str]:
    """Remove what one-offs left behind when the process relaying them died without a word
    (SIGKILL): containers, processes, folders. Only while no web process runs (`paas up`,
    once it has stopped it). Answers the ids swept."""
    swept = []
    for workdir in sorted(settings.dynos_dir.glob("*/*.run.*")):
        if (workdir / "state.json").exists():
            continue  # a dyno of the formation, of a process type named "run"
        if settings.runtime == "runc":
            subprocess.run([RUNC, "--root", str(settings.run_dir / "runc"), "delete",
                            "--force", f"paas-{workdir.name}"], capture_output=True, timeout=30)
        else:
            _kill_processes_in(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        swept.append(workdir.name)
    return swept


def _stop_container(settings: Settings, spec: DynoSpec, proc: subprocess.Popen[bytes]) -> None:
    def runc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RUNC, "--root", str(settings.run_dir / "runc"), *args],
                              capture_output=True, text=True, timeout=30)

    for _ in range(3):
        if proc.poll() is not None:
            break
        # Ending PID 1 ends the container; runc then reports its status and exits.
        runc("kill", "--all", container_id(spec), "KILL")
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    # A runc killed before it could clean up leaves its container; this removes it with
    # its cgroups (and kills anything in it).
    runc("delete", "--force", container_id(spec))


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (job control gives them groups of their own),
    pass after pass until one finds none: a process that forked as a pass went by has a
    child that pass did not see, and a killed process forks no more."""
    for _ in range(20):
        members = session_members(sid)
        if not members:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def session_members(sid: int) -> list[int]:
    """The live processes of session `sid` (zombies, already dead, left out)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[3] == str(sid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _kill_processes_in(folder: Path) -> None:
    """SIGKILL every process whose working directory is in `folder`."""
    for entry in Path("/proc").iterdir():
        try:
            cwd = os.readlink(entry / "cwd") if entry.name.isdigit() else ""
        except OSError:
            continue
        if cwd == str(folder) or cwd.startswith(f"{folder}/"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def exit_status(returncode: int) -> int:
    """A Popen returncode as a shell reports it: 128+N for a process signal N ended."""
    return 128 - returncode if returncode < 0 else returncode


# --- the wire format ---------------------------------------------------------------------
#: Frame types. STDOUT with an empty payload is a keep-alive; EXIT carries the status as
#: ASCII digits, RESIZE "rows cols", ERROR a message for the user.
STDIN, STDOUT, STDERR, EXIT, RESIZE, STDIN_EOF, ERROR = range(7)
FRAME_TYPES = frozenset(range(7))
MAX_PAYLOAD = 1 << 20
_HEADER = struct.Struct(">BI")


class ProtocolError(ValueError):
    """The peer sent something that is not a frame of this protocol."""


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    if kind not in FRAME_TYPES:
        raise ValueError(f"unknown frame type {kind}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a frame carries at most {MAX_PAYLOAD} bytes")
    return _HEADER.pack(kind, len(payload)) + payload


class FrameDecoder:
    """Bytes in, whole frames out, whatever the bytes' chunking."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._buffer)
            if kind not in FRAME_TYPES:
                raise ProtocolError(f"unknown frame type {kind}")
            if size > MAX_PAYLOAD:
                raise ProtocolError(f"a frame of {size} bytes is over the limit")
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[_HEADER.size:end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)


def parse_size(payload: bytes) -> tuple[int, int]:
    """A RESIZE payload ("rows cols") as numbers; ProtocolError unless both are sane."""
    try:
        rows, cols = (int(part) for part in payload.split())
    except ValueError:
        raise ProtocolError(f"bad terminal size {payload[:40]!r}") from None
    if not (0 < rows < 10_000 and 0 < cols < 10_000):
        raise ProtocolError(f"bad terminal size {rows}x{cols}")
    return rows, cols
