"""One-off dynos: the frame format (pure), the CLI's command line, a real one-off on runc and
on the process driver (streams, exit status, a terminal, cleanup), and the API's answers
before any upgrade."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from paas import keys, logs
from paas.cli.run import command_line
from paas.config import Settings
from paas.runtime import DynoSpec
from paas.runtime.oneoff import (
    EXIT,
    RESIZE,
    STDERR,
    STDIN,
    STDIN_EOF,
    STDOUT,
    FrameDecoder,
    ProtocolError,
    encode_frame,
    one_off_dir,
    parse_size,
    resize_one_off,
    run_one_off,
    session_members,
    stop_all_one_offs,
    stop_one_off,
    sweep_one_offs,
)
from paas.store import Store
from web import create_app

CAN_RUNC = os.geteuid() == 0 and shutil.which("runc") is not None
RUNTIMES = [
    "process",
    pytest.param("runc", marks=pytest.mark.skipif(
        not CAN_RUNC, reason="needs root and runc (CI has both): one-offs run in containers")),
]
UID = 200000


# --- the frames ------------------------------------------------------------------------
def test_frames_come_out_whole_whatever_the_chunking() -> None:
    sent = [(STDOUT, b"hello\n"), (STDERR, b""), (RESIZE, b"40 120"), (STDIN_EOF, b""),
            (STDOUT, bytes(range(256)) * 300), (EXIT, b"3")]
    wire = b"".join(encode_frame(kind, payload) for kind, payload in sent)
    assert wire[:5] == b"\x01\x00\x00\x00\x06"
    for chunk in (1, 5, 7, 4096, len(wire)):
        decoder = FrameDecoder()
        got = []
        for start in range(0, len(wire), chunk):
            got += decoder.feed(wire[start:start + chunk])
        assert got == sent
        assert decoder.pending == 0


def test_an_incomplete_frame_waits_for_the_rest() -> None:
    decoder = FrameDecoder()
    wire = encode_frame(STDIN, b"abc")
    assert decoder.feed(wire[:6]) == []
    assert decoder.pending == 6
    assert decoder.feed(wire[6:]) == [(STDIN, b"abc")]


def test_unknown_types_and_huge_frames_are_refused() -> None:
    with pytest.raises(ProtocolError, match="unknown frame type 9"):
        FrameDecoder().feed(b"\x09\x00\x00\x00\x00")
    with pytest.raises(ProtocolError, match="over the limit"):
        FrameDecoder().feed(b"\x00\x7f\x00\x00\x00")
    with pytest.raises(ValueError):
        encode_frame(7, b"")


def test_a_resize_payload_is_rows_then_columns() -> None:
    assert parse_size(b"40 120") == (40, 120)
    for bad in (b"", b"40", b"x y", b"0 80", b"40 99999"):
        with pytest.raises(ProtocolError):
            parse_size(bad)


def test_the_cli_keeps_one_argument_as_a_shell_line_and_quotes_several() -> None:
    assert command_line(("echo $HOME && ls",)) == "echo $HOME && ls"
    assert command_line(["python", "-c", "print('a b')"]) == "python -c 'print('\"'\"'a b'\"'\"')'"


# --- real one-offs ----------------------------------------------------------------------
def make_layer(root: Path) -> Path:
    """A layer as the image builder makes them: root's, with a profile script."""
    (root / ".profile.d").mkdir(parents=True)
    (root / ".profile.d" / "greet.sh").write_text('export FROM_PROFILE="profile ran"\n')
    (root / "data.txt").write_text("image data\n")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        if os.geteuid() == 0:
            os.lchown(path, 0, 0)
    return root


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def spec_for(home: Path, command: str, number: int = 1) -> DynoSpec:
    layer = home.parent / "layer"
    if not layer.exists():
        make_layer(layer)
    return DynoSpec(id=f"hello.run.{number}.t{os.getpid()}", app="hello", name=f"run.{number}",
                    type="run", release=1, restart_seq=0, layers=(layer,), command=command,
                    env={"GREETING": "hi there"}, uid=UID)


def settings_for(home: Path, runtime: str) -> Settings:
    return Settings(home=home, domain="localhost", http_port=8080, redis_url_override=None,
                    runtime=runtime)


def runc_ids(home: Path) -> set[str]:
    listed = subprocess.run(["runc", "--root", str(home / "run" / "runc"), "list", "--format",
                             "json"], capture_output=True, text=True, check=True)
    return {c["id"] for c in json.loads(listed.stdout or "null") or []}


def assert_nothing_left(s: Settings, spec: DynoSpec) -> None:
    assert not one_off_dir(s, spec).exists()
    if s.runtime == "runc":
        assert runc_ids(s.home) == set()


def run_piped(s: Settings, spec: DynoSpec, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    proc = run_one_off(s, spec, in_r, out_w, err_w)
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    with open(in_w, "wb") as feed:
        feed.write(stdin)
    with open(out_r, "rb") as out, open(err_r, "rb") as err:
        stdout, stderr = out.read(), err.read()
    proc.wait(30)
    return stop_one_off(s, spec, proc), stdout, stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_one_off_keeps_its_streams_apart_and_returns_its_status(home: Path,
                                                                   runtime: str) -> None:
    s = settings_for(home, runtime)
    spec = spec_for(home, 'echo out; echo err >&2; exit 3')
    assert run_piped(s, spec) == (3, b"out\n", b"err\n")
    assert_nothing_left(s, spec)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_one_off_has_the_release_env_its_stdin_and_no_port(home: Path, runtime: str) -> None:
    s = settings_for(home, runtime)
    spec = spec_for(home, 'echo "$DYNO|$GREETING|${PORT-none}|$FROM_PROFILE|$(cat data.txt)"; '
                          '[ "$PWD" = "$HOME" ] && echo home; cat')
    code, out, _ = run_piped(s, spec, stdin=b"from stdin\n")
    assert code == 0
    assert out.decode().splitlines() == ["run.1|hi there|none|profile ran|image data", "home",
                                         "from stdin"]
    assert_nothing_left(s, spec)


@pytest.mark.skipif(not CAN_RUNC, reason="needs root and runc: the uid and /app are the "
                                         "container's")
def test_a_runc_one_off_runs_as_the_app_in_app(home: Path) -> None:
    s = settings_for(home, "runc")
    spec = spec_for(home, "id -u; echo $HOME; pwd; hostname")
    code, out, _ = run_piped(s, spec)
    assert (code, out.decode().split()) == (0, [str(UID), "/app", "/app", "run-1"])


class Terminal:
    """The caller's side of a one-off given a pseudo-terminal."""

    def __init__(self, s: Settings, spec: DynoSpec, size: tuple[int, int] = (24, 80)) -> None:
        import termios

        self.master, slave = pty.openpty()
        termios.tcsetwinsize(self.master, size)
        self.proc = run_one_off(s, spec, slave, slave, slave)
        os.close(slave)
        self.output = b""

    def read_until(self, text: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            ready, _, _ = select.select([self.master], [], [], deadline - time.monotonic())
            if not ready:
                pytest.fail(f"no {text!r} in {self.output!r}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the other side is gone
                chunk = b""
            if not chunk:
                pytest.fail(f"the terminal closed without {text!r}: {self.output!r}")
            self.output += chunk
        return self.output

    def read_to_end(self) -> bytes:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return self.output
            if not chunk:
                return self.output
            self.output += chunk


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_one_off_with_a_terminal_sees_one_and_follows_its_size(home: Path,
                                                                 runtime: str) -> None:
    s = settings_for(home, runtime)
    spec = spec_for(home, "test -t 0 && test -t 1 && echo tty; stty size; read line; "
                          "stty size; exit 5")
    term = Terminal(s, spec, size=(30, 100))
    try:
        term.read_until(b"30 100")
        resize_one_off(term.proc, term.master, 50, 132)
        os.write(term.master, b"go\n")
        out = term.read_until(b"50 132")
        term.read_to_end()
        term.proc.wait(30)
    finally:
        code = stop_one_off(s, spec, term.proc)
        os.close(term.master)
    assert out.splitlines()[0] == b"tty"
    assert code == 5
    assert_nothing_left(s, spec)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ctrl_c_on_the_terminal_interrupts_the_command(home: Path, runtime: str) -> None:
    s = settings_for(home, runtime)
    spec = spec_for(home, "echo ready; sleep 60")
    term = Terminal(s, spec)
    try:
        term.read_until(b"ready")
        os.write(term.master, b"\x03")
        term.read_to_end()
        term.proc.wait(30)
    finally:
        code = stop_one_off(s, spec, term.proc)
        os.close(term.master)
    assert code == 130  # SIGINT ended it, as in a local shell
    assert_nothing_left(s, spec)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stopping_a_running_one_off_kills_it_and_leaves_nothing(home: Path,
                                                                runtime: str) -> None:
    s = settings_for(home, runtime)
    spec = spec_for(home, "trap '' TERM HUP; echo ready; sleep 60 & sleep 60")
    out_r, out_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    proc = run_one_off(s, spec, devnull, out_w, out_w)
    os.close(out_w)
    os.close(devnull)
    with open(out_r, "rb") as out:
        assert out.readline() == b"ready\n"
        started = time.monotonic()
        assert stop_one_off(s, spec, proc) == 137
        assert time.monotonic() - started < 10
        if runtime == "process":  # a sleep forked as the kill went by was missed once
            assert session_members(proc.pid) == []
        assert out.read() == b""  # every holder of the pipe is gone
    assert_nothing_left(s, spec)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_what_a_dead_relay_left_is_swept(home: Path, runtime: str) -> None:
    s = settings_for(home, runtime)
    spec = spec_for(home, "sleep 60 & sleep 60")
    devnull = os.open(os.devnull, os.O_RDWR)
    proc = run_one_off(s, spec, devnull, devnull, devnull)
    os.close(devnull)
    wait_for(lambda: runtime == "process" or runc_ids(home), "the container")
    assert sweep_one_offs(s) == [spec.id]
    assert proc.wait(10) in (-9, 137)  # runc reports its container's SIGKILL as 137
    assert_nothing_left(s, spec)
    stop_one_off(s, spec, proc)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_one_offs_still_running_at_exit_are_stopped(home: Path, runtime: str) -> None:
    s = settings_for(home, runtime)
    spec = spec_for(home, "sleep 60")
    devnull = os.open(os.devnull, os.O_RDWR)
    proc = run_one_off(s, spec, devnull, devnull, devnull)
    os.close(devnull)
    stop_all_one_offs()
    assert proc.returncode is not None
    assert_nothing_left(s, spec)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


# --- the API before any upgrade ---------------------------------------------------------------
@pytest.fixture()
def client(tmp_path: Path, redis_url: str, r: redis.Redis) -> Iterator[FlaskClient]:
    s = Settings(home=tmp_path / "paas", domain="localhost", http_port=8080,
                 redis_url_override=redis_url, runtime="process")
    store = Store(s.db_path)
    store.migrate()
    admin = store.create_user("admin", is_admin=True)
    app = create_app(s)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {store.create_token(admin.id)}"
    client.store = store  # type: ignore[attr-defined]
    yield client


def test_running_before_a_push_or_without_a_command_is_a_clean_error(
        client: FlaskClient) -> None:
    assert client.post("/api/apps/nope/dynos", json={"command": "ls"}).status_code == 404
    client.post("/api/apps", json={"name": "hello"})
    empty = client.post("/api/apps/hello/dynos", json={"command": "  "})
    assert empty.status_code == 422 and "command" in empty.get_json()["message"]
    early = client.post("/api/apps/hello/dynos", json={"command": "ls", "attach": True})
    assert early.status_code == 409
    assert "push the app first" in early.get_json()["message"]


def test_attach_needs_the_upgrade_headers(client: FlaskClient, tmp_path: Path) -> None:
    client.post("/api/apps", json={"name": "hello"})
    release(client, tmp_path)
    plain = client.post("/api/apps/hello/dynos", json={"command": "ls", "attach": True})
    assert plain.status_code == 422 and "Upgrade: paas-run" in plain.get_json()["message"]


def test_a_detached_one_off_logs_its_output_and_cleans_up(
        client: FlaskClient, tmp_path: Path, r: redis.Redis) -> None:
    client.post("/api/apps", json={"name": "hello"})
    release(client, tmp_path)
    answer = client.post("/api/apps/hello/dynos",
                         json={"command": "echo detached $DYNO; exit 2", "attach": False})
    assert answer.status_code == 201
    assert answer.get_json()["name"] == "run.1"
    assert r.get(keys.one_off_counter("hello")) == b"1"
    deadline = time.monotonic() + 20
    while not any("dyno.stopped" in line.line for line in logs.recent(r, "hello")):
        assert time.monotonic() < deadline, logs.recent(r, "hello")
        time.sleep(0.05)
    lines = [(line.proc, line.line) for line in logs.recent(r, "hello")]
    assert ("run.1", "detached run.1") in lines
    assert ("run.1", "dyno.stopped status=2") in lines
    assert list((tmp_path / "paas" / "dynos" / "hello").iterdir()) == []


def release(client: FlaskClient, tmp_path: Path) -> None:
    store: Store = client.store  # type: ignore[attr-defined]
    app = store.app("hello")
    slug = make_layer(tmp_path / "slug")
    made = store.create_release(app, description="test", user=None, config={"A": "1"},
                                slug=str(slug), process_types={"web": "true"})
    store.set_release_status(made, "succeeded")
