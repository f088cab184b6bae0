"""Running a real platform for end-to-end tests: `paas up` as a child, and ways to talk to it.

Everything is real: redis-server, gunicorn, the build worker, the agent, the
router and the git SSH server on free ports, the `paas` CLI and the `git`
client pushing over HTTP (and SSH). Only PAAS_HOME and HOME are private to the test session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
PAAS = str(Path(sys.executable).with_name("paas"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "") -> object:  # noqa: ANN001
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Platform:
    home: Path
    user_home: Path
    port: int
    runtime: str = "process"
    https_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    ssh_port: int = field(default_factory=free_port)  # git over SSH
    #: Operator settings beyond the test defaults: a test module's (PAAS_SOURCE_URL_ALLOW_PRIVATE…)
    #: or a bench's comparison.
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAAS_", "GIT_"))}
        env.update({
            "PAAS_HOME": str(self.home),
            "PAAS_HTTP_PORT": str(self.port),
            "PAAS_HTTPS_PORT": str(self.https_port),
            "PAAS_DOMAIN": "localhost",
            "PAAS_RUNTIME": self.runtime,
            "PAAS_SSH_PORT": str(self.ssh_port),
            "PAAS_STOP_GRACE": "5",
            "PAAS_BOOT_TIMEOUT": "30",
            # Image garbage is collected when a test asks (images:gc), never behind its back.
            "PAAS_GC_INTERVAL": "86400",
            "PAAS_GC_GRACE": "0",
            "HOME": str(self.user_home),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
        })
        env.pop("REDIS_URL", None)
        env.update(self.extra_env)
        return env

    # --- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        self.log_path = self.home.parent / f"up-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [PAAS, "up"], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_until(self.healthy, timeout=90, interval=0.2, what="the platform to be healthy")

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"paas up exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return self.get_platform("/api/health").status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path else ""

    # --- talking to it -------------------------------------------------------------
    def get_platform(self, path: str, **kwargs: object) -> requests.Response:
        return requests.get(self.url + path, headers={"Host": "localhost"}, timeout=10,
                            **kwargs)

    def api(self, method: str, path: str, headers: dict[str, str] | None = None,
            **kwargs: object) -> requests.Response:
        sent = {"Host": "localhost", "Authorization": f"Bearer {self.token}", **(headers or {})}
        return requests.request(method, self.url + "/api" + path, headers=sent,
                                timeout=30, **kwargs)

    def get_app(self, app: str, path: str = "/") -> requests.Response:
        """A request through the router, as a browser of http://APP.localhost would send it."""
        return requests.get(self.url + path, headers={"Host": f"{app}.localhost"}, timeout=30)

    def cli(self, *args: str, cwd: Path | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = self.env() | {"PAAS_URL": self.url, "PAAS_API_KEY": self.token}
        done = subprocess.run([PAAS, *args], env=env, cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"paas {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def git(self, *args: str, cwd: Path, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["git", *args], env=self.env(), cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
                f"\n--- platform log ---\n{self.log()}"
            )
        return done

    def remote_url(self, app: str, token: str | None = None) -> str:
        auth = f"paas:{token}@" if token else ""
        return f"http://{auth}127.0.0.1:{self.port}/git/{app}.git"


def make_app_repo(dest: Path, fixture: str = "flask-app") -> Path:
    """A git repository holding a copy of a fixture app, committed on `main`."""
    shutil.copytree(FIXTURES / fixture, dest)
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "first"]):
        subprocess.run(argv, cwd=dest, env=env, check=True)
    return dest


def commit_change(repo: Path, path: str, old: str, new: str, message: str) -> None:
    target = repo / path
    target.write_text(target.read_text().replace(old, new))
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", "commit", "-q", "-am", message], cwd=repo, env=env, check=True)


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line or environment mentions `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        if text.encode() in cmdline or text.encode() in environ or text in cwd:
            found.append(int(entry.name))
    return found


def push_watching(repo: Path, env: dict[str, str],
                  marker: str = "Python app detected") -> tuple[int, str, bool]:
    """`git push paas main` in `repo`: its exit status, what it printed, and whether
    `marker` reached the pusher while the push was still running (a streamed build)."""
    lines, seen_while_running = [], False
    with subprocess.Popen(["git", "push", "paas", "main"], cwd=repo, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as push:
        assert push.stderr is not None
        for line in push.stderr:
            lines.append(line)
            if marker in line and push.poll() is None:
                seen_while_running = True
    return push.returncode, "".join(lines), seen_while_running


@contextmanager
def running_platform(base: Path, runtime: str,
                     extra_env: dict[str, str] | None = None) -> Iterator[Platform]:
    """A platform of its own under `base`; once stopped, no process of it may be left."""
    p = Platform(home=base / "paas-home", user_home=base / "user", port=free_port(),
                 runtime=runtime, https_port=free_port(), extra_env=extra_env or {})
    p.user_home.mkdir()
    p.start()
    try:
        yield p
    finally:
        assert p.stop() == 0, p.log()
    assert processes_mentioning(str(p.home)) == []
