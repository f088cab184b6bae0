"""Runs buildpacks through the Heroku buildpack API: bin/detect, bin/compile, bin/release.

Buildpacks get a clean environment (`build_env`), never the platform's own, and their
compile output is handed on line by line as it is printed, so the pusher sees it live.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from uv import find_uv_bin

from paas.errors import BuildFailed

if TYPE_CHECKING:
    from paas.build.sandbox import BuildSandbox

BUILDPACKS_DIR = Path(__file__).resolve().parents[2] / "buildpacks"

# Detection order of the built-in buildpacks; folders not named here come after, by name.
BUILTIN_ORDER: tuple[str, ...] = ("python", "nodejs", "static", "procfile")

# Sources the `export` files of the buildpacks that ran before this one (Heroku's multi-
# buildpack contract), then becomes bin/compile.
EXPORTS_WRAPPER = (
    'for f in "$PAAS_EXPORTS"/*; do [ -r "$f" ] && . "$f"; done; unset f; exec "$@"'
)

# The stack name buildpacks see as $STACK when the caller does not set one.
DEFAULT_STACK = "host"

# PATH entries after the tools dirs: the stack's own programs, nothing of the platform's.
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")

# bin/detect and bin/release only read a few files; a minute means something hangs.
DETECT_TIMEOUT = 60.0
RELEASE_TIMEOUT = 60.0

# A line longer than this (a progress bar without newlines, say) is passed on in pieces
# rather than held in memory until its end.
MAX_LINE_BYTES = 64 * 1024

# How often a silent compile is checked for having exited while a background child it
# left behind still holds the output pipe open.
_POLL_SECONDS = 0.2

# ENV_DIR file names: anything that is one path component (Heroku allows any name;
# the buildpack decides which it exports).
_UNSAFE_ENV_NAME = re.compile(r"[/\x00]|^\.{1,2}$|^$")


class BuildpackError(BuildFailed):
    """A buildpack could not be detected or failed; the message says what to do next."""


@dataclass(frozen=True)
class Buildpack:
    name: str
    path: Path


def builtin_buildpacks() -> list[Buildpack]:
    """The buildpacks shipped in the repository, in detection order."""
    found = {
        entry.name: Buildpack(entry.name, entry)
        for entry in BUILDPACKS_DIR.iterdir()
        if (entry / "bin" / "detect").is_file()
    }
    ordered = [found.pop(name) for name in BUILTIN_ORDER if name in found]
    return ordered + [found[name] for name in sorted(found)]


def _run_script(
    bp: Buildpack, script: str, build_dir: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a short buildpack script (bin/detect, bin/release) and capture what it prints."""
    try:
        return subprocess.run(
            [str(bp.path / "bin" / script), str(build_dir)],
            cwd=build_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildpackError(
            f"the {bp.name} buildpack is broken: its bin/{script} could not run ({exc}); "
            "ask the platform operator to fix or remove it"
        ) from exc


def detect(
    build_dir: Path, buildpacks: list[Buildpack], env: dict[str, str]
) -> tuple[Buildpack, str]:
    """The first buildpack whose bin/detect accepts the app, and the name it printed."""
    for bp in buildpacks:
        result = _run_script(bp, "detect", build_dir, env, DETECT_TIMEOUT)
        if result.returncode == 0:
            return bp, result.stdout.strip() or bp.name
    tried = ", ".join(bp.name for bp in buildpacks) or "none"
    raise BuildpackError(
        f"no buildpack recognised this app (tried: {tried}). Add what your language needs at "
        "the top of the repository (requirements.txt or pyproject.toml for Python, "
        "package.json for Node.js, index.html for a static site, or a Procfile running a "
        "program you ship), or choose buildpacks with `paas buildpacks:set` or a .buildpacks "
        "file"
    )


# Shadows the builtin inside this module: it is the buildpack API's name for the step.
def compile(
    bp: Buildpack,
    build_dir: Path,
    cache_dir: Path,
    config: dict[str, str],
    env: dict[str, str],
    emit: Callable[[str], None],
    timeout: float = 900,
    sandbox: BuildSandbox | None = None,
    exports: Sequence[Path] = (),
) -> None:
    """Run bin/compile, passing each line of its output to `emit` as soon as it is printed.

    `config` becomes ENV_DIR (one file per config var), which exists only for this call.
    With a `sandbox`, the compile runs in its container (as the app's uid) instead of as a
    host process. `exports` are the `export` files of earlier buildpacks, sourced first.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    compile_env = dict(env)
    compile_env.setdefault("STACK", DEFAULT_STACK)
    compile_env["BUILD_DIR"] = str(build_dir)
    with tempfile.TemporaryDirectory(prefix="paas-env-") as env_dir, \
            tempfile.TemporaryDirectory(prefix="paas-exports-") as exports_dir:
        _write_env_dir(Path(env_dir), config)
        for number, export in enumerate(exports):
            shutil.copyfile(export, Path(exports_dir) / f"{number:03d}")
        argv = [str(bp.path / "bin" / "compile"), str(build_dir), str(cache_dir), env_dir]
        if exports:
            compile_env["PAAS_EXPORTS"] = exports_dir
            argv = ["/bin/bash", "-c", EXPORTS_WRAPPER, "compile", *argv]
        popen_env = compile_env
        if sandbox is not None:
            argv = sandbox.command(bp.path / "bin" / "compile", build_dir, cache_dir,
                                   Path(env_dir), compile_env,
                                   exports_dir=Path(exports_dir) if exports else None)
            popen_env = {"PATH": os.pathsep.join(SYSTEM_PATH), "LANG": "C.UTF-8"}
        try:
            proc = subprocess.Popen(
                argv,
                cwd=build_dir,
                env=popen_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Its own process group, so a timeout kills everything it started.
                start_new_session=True,
            )
        except OSError as exc:
            raise BuildpackError(
                f"the {bp.name} buildpack is broken: its bin/compile could not run ({exc}); "
                "ask the platform operator to fix or remove it"
            ) from exc
        try:
            finished = _stream_lines(proc, emit, deadline=time.monotonic() + timeout)
        finally:
            # Nothing a compile started may outlive it (nor keep running if emit raised).
            _kill_group(proc)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            if sandbox is not None:
                sandbox.cleanup()
    if not finished:
        raise BuildpackError(
            f"the {bp.name} buildpack did not finish compiling within {timeout:g} s and was "
            "stopped; make the build do less (e.g. fewer or prebuilt dependencies) or ask the "
            "platform operator for a longer build timeout"
        )
    if proc.returncode != 0:
        raise BuildpackError(f"the {bp.name} buildpack failed to compile; see the output above")


def release(bp: Buildpack, build_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """The `default_process_types` that bin/release prints (possibly empty)."""
    result = _run_script(bp, "release", build_dir, env, RELEASE_TIMEOUT)
    if result.returncode != 0:
        raise BuildpackError(
            f"the {bp.name} buildpack's bin/release failed (exit {result.returncode}): "
            f"{_last_line(result.stderr)}; ask the platform operator to fix it"
        )
    return parse_release(bp.name, result.stdout)


def parse_release(name: str, text: str) -> dict[str, str]:
    """`default_process_types` from bin/release's YAML, checked to be names to commands."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BuildpackError(
            f"the {name} buildpack's bin/release printed invalid YAML ({exc}); "
            "ask the platform operator to fix it"
        ) from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise BuildpackError(
            f"the {name} buildpack's bin/release printed {type(document).__name__}, "
            "not a mapping; ask the platform operator to fix it"
        )
    types = document.get("default_process_types") or {}
    if not isinstance(types, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in types.items()
    ):
        raise BuildpackError(
            f"the {name} buildpack's bin/release gave default_process_types that are not "
            "names mapped to commands; ask the platform operator to fix it"
        )
    return dict(types)


def build_env(base_path_dirs: list[Path], *, home: Path | None = None) -> dict[str, str]:
    """A clean environment for buildpacks: nothing from the platform's own (tokens, PAAS_*).

    HOME is `home` or else a private empty directory (mode 0700, one per process): pip and
    uv read config from HOME, so neither the platform user's home nor a shared /tmp will do.
    """
    path = [str(p) for p in base_path_dirs] + list(SYSTEM_PATH)
    return {
        "PATH": os.pathsep.join(path),
        "HOME": str(home if home is not None else _private_home()),
        "LANG": "C.UTF-8",
    }


def ensure_tools(tools_dir: Path) -> Path:
    """Make tools_dir/bin hold `uv` (a symlink to the uv this platform ships); return it.

    Buildpacks get this directory first on PATH, so the python buildpack finds uv there.
    """
    bin_dir = tools_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = Path(find_uv_bin()).resolve()
    link = bin_dir / "uv"
    if not (link.is_symlink() and Path(os.readlink(link)) == target):
        # Replaced atomically: another build worker may be running it right now.
        staging = bin_dir / f".uv.{os.getpid()}"
        staging.unlink(missing_ok=True)
        staging.symlink_to(target)
        staging.replace(link)
    return bin_dir


_home: Path | None = None


def _private_home() -> Path:
    global _home
    # Made again if a tmp cleaner removed it from a long-running worker.
    if _home is None or not _home.is_dir():
        _home = Path(tempfile.mkdtemp(prefix="paas-buildpack-home-"))
    return _home


def _write_env_dir(env_dir: Path, config: dict[str, str]) -> None:
    for name, value in config.items():
        if _UNSAFE_ENV_NAME.search(name):
            # Cannot be a file name; no buildpack could export it as a variable either.
            continue
        path = env_dir / name
        # Config vars are secrets: readable by the build alone.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value)


def _stream_lines(
    proc: subprocess.Popen[bytes], emit: Callable[[str], None], deadline: float
) -> bool:
    """Emit proc's output line by line until EOF; False if the deadline came first."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not selector.select(min(remaining, _POLL_SECONDS)):
                if _has_exited(proc):
                    # The compile exited but something it left running holds the pipe;
                    # stop that, and the pipe reaches EOF.
                    _kill_group(proc)
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                emit(_decode(line))
            while len(pending) > MAX_LINE_BYTES:
                emit(_decode(pending[:MAX_LINE_BYTES]))
                pending = pending[MAX_LINE_BYTES:]
    if pending:
        emit(_decode(pending))
    return True


def _decode(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", errors="replace")


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    # WNOWAIT leaves the exited compile unreaped: its pid, and so its process group id,
    # cannot be reused by an unrelated process before _kill_group has run.
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The group id is the compile's pid (start_new_session); it stays valid while any
    # member lives, even after the compile itself exited and before it is reaped.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


__all__ = [
    "BUILDPACKS_DIR",
    "BUILTIN_ORDER",
    "Buildpack",
    "BuildpackError",
    "build_env",
    "builtin_buildpacks",
    "compile",
    "detect",
    "ensure_tools",
    "parse_release",
    "release",
]
