"""`paas run` end to end, on the process and the runc runtime: the CLI talks to the router,
the router tunnels the upgraded connection to gunicorn, the web process runs the one-off and
relays its streams; its exit status is the CLI's, and nothing of it outlives the session."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform import PAAS, Platform, make_app_repo, wait_until

pytestmark = pytest.mark.slow

PRINT_DYNO = ("import os,sys; print(os.environ['DYNO'], os.environ.get('GREETING'), "
              "os.environ.get('PORT')); sys.exit(4)")


@pytest.fixture(scope="module", params=["process", "runc"])
def pushed(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Platform, str]:
    """A platform of each runtime with the flask app pushed and GREETING set."""
    fixture = "platform" if request.param == "process" else "runc_platform"
    p: Platform = request.getfixturevalue(fixture)
    app = f"runner-{request.param}"
    p.cli("apps:create", app)
    repo = make_app_repo(tmp_path_factory.mktemp("src") / app)
    p.git("push", p.remote_url(app, p.token), "main", cwd=repo)
    p.cli("config:set", "GREETING=hello-from-config", "-a", app)
    return p, app


def paas(p: Platform, *args: str, stdin: str | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = p.env() | {"PAAS_URL": p.url, "PAAS_API_KEY": p.token}
    return subprocess.run([PAAS, *args], env=env, capture_output=True, text=True,
                          input=stdin if stdin is not None else "", timeout=timeout)


def one_off_dirs(p: Platform, app: str) -> list[Path]:
    root = p.home / "dynos" / app
    return sorted(root.glob(f"{app}.run.*")) if root.exists() else []


def runc_containers(p: Platform, app: str) -> list[str]:
    listed = subprocess.run(["runc", "--root", str(p.home / "run" / "runc"), "list",
                             "--format", "json"], capture_output=True, text=True, check=True)
    ids = [c["id"] for c in json.loads(listed.stdout or "null") or []]
    return [i for i in ids if i.startswith(f"paas-{app}.run.")]


def assert_nothing_left(p: Platform, app: str) -> None:
    wait_until(lambda: not one_off_dirs(p, app), timeout=20, what="the one-off's folder to go")
    if p.runtime == "runc":
        assert runc_containers(p, app) == []


def test_run_prints_the_output_and_exits_with_the_commands_status(
        pushed: tuple[Platform, str]) -> None:
    p, app = pushed
    done = paas(p, "run", "-a", app, "--", "python", "-c", PRINT_DYNO)
    assert done.returncode == 4, done.stderr
    assert done.stdout == "run.1 hello-from-config None\n"
    assert_nothing_left(p, app)


def test_stdin_is_forwarded_until_its_end(pushed: tuple[Platform, str]) -> None:
    p, app = pushed
    done = paas(p, "run", "-a", app, "cat", stdin="hello\n")
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr
    big = "".join(f"line {i}\n" for i in range(20000))  # more than any pipe holds
    done = paas(p, "run", "-a", app, "wc -l; echo done >&2", stdin=big)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "20000", "done\n")


def test_stdout_and_stderr_stay_apart(pushed: tuple[Platform, str]) -> None:
    p, app = pushed
    done = paas(p, "run", "-a", app, "echo out; echo err >&2; test -t 0 || echo no-tty")
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\nno-tty\n", "err\n")


def test_a_client_that_goes_away_takes_the_one_off_with_it(
        pushed: tuple[Platform, str]) -> None:
    p, app = pushed
    env = p.env() | {"PAAS_URL": p.url, "PAAS_API_KEY": p.token}
    cli = subprocess.Popen([PAAS, "run", "-a", app, "echo started; sleep 300"], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == "started\n"
        assert one_off_dirs(p, app)
        cli.send_signal(signal.SIGKILL)
        cli.wait(10)
    finally:
        cli.kill()
        cli.wait()
        cli.stdout.close()  # type: ignore[union-attr]
    assert_nothing_left(p, app)


def test_a_detached_one_off_writes_to_the_log(pushed: tuple[Platform, str]) -> None:
    p, app = pushed
    done = paas(p, "run", "--detached", "-a", app, "echo detached-$DYNO")
    assert done.returncode == 0, done.stderr
    name = done.stdout.split(" as ")[1].split(";")[0]
    wait_until(lambda: f"app[{name}]: detached-{name}" in paas(p, "logs", "-a", app).stdout,
               timeout=30, what="the detached one-off's line in the log")
    assert_nothing_left(p, app)


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_with_a_terminal_the_one_off_gets_one(pushed: tuple[Platform, str]) -> None:
    p, app = pushed
    env = p.env() | {"PAAS_URL": p.url, "PAAS_API_KEY": p.token}
    inner = f"{PAAS} run -a {app} -- 'test -t 0 && echo tty-$(stty size); exit 3'"
    done = subprocess.run(["script", "-qec", inner, "/dev/null"], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "tty-" in done.stdout
    assert_nothing_left(p, app)


def test_running_before_a_push_is_a_clean_error(pushed: tuple[Platform, str]) -> None:
    p, _ = pushed
    empty = f"empty-{p.runtime}"
    p.cli("apps:create", empty)
    done = paas(p, "run", "-a", empty, "cat")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: ") and "push the app first" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    missing = paas(p, "run", "-a", "no-such-app", "ls")
    assert missing.returncode == 1 and "no app named" in missing.stderr
