"""`POST /api/apps/{app}/dynos`: one-off dynos (`paas run`), attached or detached.

Attached (`"attach": true` in the `Paas-Run` header, with `Connection: Upgrade` and
`Upgrade: paas-run`), the answer is `101 Switching Protocols` written on gunicorn's socket,
then frames both ways (see `paas.runtime.oneoff`) until the command's exit status; then the
connection closes. A client that goes away takes the one-off with it. Detached (a JSON
body), the answer is 201 and a thread of this process ships the output to the app's log.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import selectors
import socket
import subprocess
import termios
import threading
import time
from typing import Any

import redis
from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from paas import events, keys, logs
from paas.config import Settings
from paas.errors import Conflict, InvalidInput, PaasError
from paas.runtime import DynoSpec, oneoff
from paas.runtime.oneoff import FrameDecoder, encode_frame
from web.api import api, app_for_request, rds, settings, store
from web.api import models as m
from web.api.schema import spec

log = logging.getLogger(__name__)

UPGRADE = "paas-run"
PARAMS_HEADER = "Paas-Run"
#: Seconds without a frame to the client before an empty one: the router closes a tunnel
#: that has been idle for 55 s.
KEEPALIVE = 20.0
#: Once the command has ended, how long its last output may take to arrive (a process
#: driver's command can leave a child holding the pipe).
DRAIN = 1.0
#: Stdin bytes held for a command that does not read them before the client is not read.
STDIN_BACKLOG = 1 << 20
DEFAULT_SIZE = (24, 80)


class UpgradedResponse(Response):
    """The view's answer once it has spoken on the raw socket itself. gunicorn takes a
    StopIteration from the WSGI call as "close the connection" and writes nothing more
    (flask-sock does the same for WebSockets)."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        raise StopIteration


@api.post("/apps/<name>/dynos")
@spec(body=m.RunCreate, response=m.Dyno, status=201, validate=False)
def run_dyno(name: str) -> ResponseReturnValue:
    app = app_for_request(name, "run")
    body = _run_params()
    command = body.get("command")
    if not isinstance(command, str) or not command.strip():
        raise InvalidInput('give the command to run, like {"command": "bash"}')
    attach = body.get("attach", False)
    if not isinstance(attach, bool):
        raise InvalidInput("attach must be true or false")
    tty = body.get("tty", False) is True
    size = _size(body.get("size"))
    release = store().current_release(app)
    if release is None:
        raise Conflict(f"{app.name} has no release to run yet; push the app first")
    sock = _upgrade_socket() if attach else None
    s, r = settings(), rds()
    number = int(r.incr(keys.one_off_counter(app.name)))
    spec = oneoff.one_off_spec(s, app, release, number, command)
    session = Session(s, sock, spec, tty, size) if sock is not None else None
    try:  # a failure to start is still an API error: nothing is upgraded yet
        if session is not None:
            session.start()
        else:
            _start_detached(s, r, spec)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        log.exception("starting %s of %s failed", spec.name, app.name)
        raise PaasError(f"could not start {spec.name}: {exc}") from exc
    events.emit(r, app.name, events.DYNO_STARTING, proc=spec.name,
                release=f"v{release.version}", command=json.dumps(command),
                attached=str(attach).lower())
    if session is None:
        return jsonify(_dyno_json(spec, "up", attached=False)), 201
    code = session.relay()
    events.emit(r, app.name, events.DYNO_STOPPED, proc=spec.name,
                status=code if code is not None else "killed")
    return UpgradedResponse()


def _run_params() -> dict:
    """The JSON body, or the same JSON in the `Paas-Run` header of a request without a body.
    An attached run needs the header: once a request asks to upgrade, the router (llhttp)
    takes whatever follows its head for the new protocol, body included."""
    header = request.headers.get(PARAMS_HEADER)
    if header is not None:
        try:
            data = json.loads(header)
        except ValueError:
            data = None
    else:
        data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput('send a JSON object, like {"command": "bash", "attach": true}')
    return data


def _size(value: object) -> tuple[int, int]:
    if value is None:
        return DEFAULT_SIZE
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10_000
                    for v in value)):
        return value[0], value[1]
    raise InvalidInput("size must be [rows, columns] of the caller's terminal")


def _upgrade_socket() -> socket.socket:
    connection = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    if "upgrade" not in connection or request.headers.get("Upgrade", "").lower() != UPGRADE:
        raise InvalidInput(
            f"an attached run needs the headers `Connection: Upgrade` and `Upgrade: {UPGRADE}` "
            "(the paas CLI sends them); or send attach: false to run it detached"
        )
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        raise PaasError("this web server cannot switch protocols; attached runs need the "
                        "platform's gunicorn (`paas up`)")
    return sock


def _dyno_json(spec: DynoSpec, state: str, attached: bool) -> dict:
    return {"name": spec.name, "type": spec.type, "state": state, "release": spec.release,
            "command": spec.command, "attached": attached}


# --- detached ---------------------------------------------------------------------------
def _start_detached(s: Settings, r: redis.Redis, spec: DynoSpec) -> None:
    read_fd, write_fd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        proc = oneoff.run_one_off(s, spec, devnull, write_fd, write_fd)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(devnull)
        os.close(write_fd)
    threading.Thread(target=_ship_detached, args=(s, r, spec, proc, read_fd),
                     name=f"one-off-{spec.id}", daemon=True).start()


def _ship_detached(s: Settings, r: redis.Redis, spec: DynoSpec,
                   proc: subprocess.Popen[bytes], read_fd: int) -> None:
    try:
        with open(read_fd, "rb") as output:
            for raw in output:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                try:
                    logs.append(r, spec.app, "app", spec.name, line)
                except redis.RedisError as exc:
                    log.warning("could not log a line of %s of %s: %s", spec.name, spec.app, exc)
    finally:
        code = oneoff.stop_one_off(s, spec, proc)
        events.emit(r, spec.app, events.DYNO_STOPPED, proc=spec.name, status=code)


# --- attached ---------------------------------------------------------------------------
class ClientGone(Exception):
    """The client closed the connection (or it broke)."""


class Session:
    """One attached one-off: its stdio on one side, the client's socket on the other."""

    def __init__(self, s: Settings, sock: socket.socket, spec: DynoSpec, tty: bool,
                 size: tuple[int, int]) -> None:
        self.s, self.sock, self.spec, self.tty, self.size = s, sock, spec, tty, size
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdin_fd: int | None = None  # ours: the pty master, or a pipe's write end
        self.outputs: dict[int, int] = {}  # our fd -> the frame type its bytes go out as
        self.stdin_pending = bytearray()
        self.stdin_eof = False
        self.decoder = FrameDecoder()
        self.selector = selectors.DefaultSelector()
        self._events: dict[int, int] = {}
        self._fds: list[int] = []  # ours, closed at the end
        self.last_sent = time.monotonic()

    def start(self) -> None:
        """Start the command with a terminal or pipes as its stdio."""
        if self.tty:
            master, slave = pty.openpty()
            termios.tcsetwinsize(master, self.size)
            self._fds.append(master)
            child = (slave, slave, slave)
            self.stdin_fd, self.outputs = master, {master: oneoff.STDOUT}
        else:
            in_r, in_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self._fds += [in_w, out_r, err_r]
            child = (in_r, out_w, err_w)
            self.stdin_fd, self.outputs = in_w, {out_r: oneoff.STDOUT, err_r: oneoff.STDERR}
        try:
            self.proc = oneoff.run_one_off(self.s, self.spec, *child)
        except BaseException:
            self._close_fds()
            self.selector.close()
            raise
        finally:
            for fd in set(child):
                os.close(fd)

    def relay(self) -> int | None:
        """Answer 101, relay until the command has ended, send its exit status; always stop
        the one-off. Returns its status (None when the client left first)."""
        assert self.proc is not None
        code = None
        pidfd = None
        try:
            self._sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                b"Upgrade: " + UPGRADE.encode() + b"\r\n"
                b"Paas-Dyno: " + self.spec.name.encode() + b"\r\n\r\n"
            )
            for fd in [*self._fds]:
                os.set_blocking(fd, False)
            self._want(self.sock.fileno(), selectors.EVENT_READ)
            for fd in self.outputs:
                self._want(fd, selectors.EVENT_READ)
            try:
                pidfd = os.pidfd_open(self.proc.pid)
                self._want(pidfd, selectors.EVENT_READ)
            except OSError:  # an old kernel: the loop's timeout notices the exit instead
                pidfd = None
            self._loop(pidfd)
            code = oneoff.stop_one_off(self.s, self.spec, self.proc)
            self._send(oneoff.EXIT, str(code).encode())
        except ClientGone:
            log.info("the client of %s of %s left; stopping it", self.spec.name, self.spec.app)
        except oneoff.ProtocolError as exc:
            self._send_quietly(oneoff.ERROR, f"the session broke: {exc}")
        except Exception:
            log.exception("the session of %s of %s failed", self.spec.name, self.spec.app)
            self._send_quietly(oneoff.ERROR, "the session failed on the platform; see its log")
        finally:
            if code is None:  # the relay did not get as far as stopping it
                oneoff.stop_one_off(self.s, self.spec, self.proc)
            if pidfd is not None:
                os.close(pidfd)
            self.selector.close()
            self._close_fds()
        return code

    # --- the loop
    def _loop(self, pidfd: int | None) -> None:
        assert self.proc is not None
        ended_at: float | None = None
        sock_fd = self.sock.fileno()
        while True:
            now = time.monotonic()
            if ended_at is None and self.proc.poll() is not None:
                ended_at = now
            if ended_at is not None and (not self.outputs or now - ended_at > DRAIN):
                return
            timeout = max(0.0, KEEPALIVE - (now - self.last_sent))
            if ended_at is not None:
                timeout = min(timeout, 0.1)
            elif pidfd is None:
                timeout = min(timeout, 0.5)
            for key, mask in self.selector.select(timeout):
                fd = key.fd
                if fd == sock_fd:
                    self._from_client()
                elif fd == pidfd:
                    self._want(pidfd, 0)
                else:
                    if mask & selectors.EVENT_WRITE:
                        self._write_stdin()
                    if mask & selectors.EVENT_READ and fd in self.outputs:
                        self._from_command(fd)
            if time.monotonic() - self.last_sent >= KEEPALIVE:
                self._send(oneoff.STDOUT, b"")  # a keep-alive: an empty stdout frame

    def _from_client(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (ConnectionError, TimeoutError) as exc:
            raise ClientGone() from exc
        if not data:
            raise ClientGone()
        for kind, payload in self.decoder.feed(data):
            if kind == oneoff.STDIN:
                if not self.stdin_eof:
                    self.stdin_pending += payload
            elif kind == oneoff.STDIN_EOF:
                if self.tty:
                    self.stdin_pending += b"\x04"  # the terminal's end-of-file character
                else:
                    self.stdin_eof = True
            elif kind == oneoff.RESIZE:
                rows, cols = oneoff.parse_size(payload)
                if self.tty and self.stdin_fd is not None and self.proc is not None:
                    oneoff.resize_one_off(self.proc, self.stdin_fd, rows, cols)
            else:
                raise oneoff.ProtocolError(f"a client does not send frames of type {kind}")
        self._write_stdin()

    def _write_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            self.stdin_pending.clear()
            self._want(self.sock.fileno(), selectors.EVENT_READ)
            return
        while self.stdin_pending:
            try:
                written = os.write(fd, self.stdin_pending)
            except BlockingIOError:
                break
            except OSError:  # the command closed its stdin: what it never read is dropped
                self.stdin_pending.clear()
                break
            del self.stdin_pending[:written]
        if self.stdin_eof and not self.stdin_pending and not self.tty:
            self._want(fd, 0)
            self._close_fd(fd)
            self.stdin_fd = None
            return
        writing = selectors.EVENT_WRITE if self.stdin_pending else 0
        reading = selectors.EVENT_READ if fd in self.outputs else 0
        self._want(fd, reading | writing)
        # Backpressure: stop reading the client while the command lags behind its stdin.
        self._want(self.sock.fileno(),
                   0 if len(self.stdin_pending) > STDIN_BACKLOG else selectors.EVENT_READ)

    def _from_command(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: a pty master whose last slave holder is gone
            data = b""
        if data:
            self._send(self.outputs[fd], data)
            return
        del self.outputs[fd]
        writing = selectors.EVENT_WRITE if fd == self.stdin_fd and self.stdin_pending else 0
        self._want(fd, writing)
        if fd != self.stdin_fd:
            self._close_fd(fd)

    # --- helpers
    def _send(self, kind: int, payload: bytes) -> None:
        self._sendall(encode_frame(kind, payload))
        self.last_sent = time.monotonic()

    def _sendall(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ClientGone() from exc

    def _send_quietly(self, kind: int, message: str) -> None:
        try:
            self._send(kind, message.encode())
        except ClientGone:
            pass

    def _want(self, fd: int, events: int) -> None:
        """Register `fd` for `events` (0: not at all), whatever it was registered for."""
        current = self._events.get(fd, 0)
        if events == current:
            return
        if current == 0:
            self.selector.register(fd, events)
        elif events == 0:
            self.selector.unregister(fd)
        else:
            self.selector.modify(fd, events)
        if events:
            self._events[fd] = events
        else:
            self._events.pop(fd, None)

    def _close_fd(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            os.close(fd)

    def _close_fds(self) -> None:
        for fd in list(self._fds):
            self._close_fd(fd)

