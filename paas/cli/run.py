"""`paas run`: a one-off dyno attached to this terminal, or detached with its output in the logs.

Attached, the CLI speaks HTTP/1.1 itself: `POST /api/apps/APP/dynos` with
`Connection: Upgrade`, `Upgrade: paas-run` and the JSON parameters in the `Paas-Run` header
(no body); after `101 Switching Protocols` both sides
send frames (see `paas.runtime.oneoff`) until the platform sends the command's exit status,
which becomes this command's. With a terminal on both stdin and stdout the dyno gets one
too: the local terminal goes raw (restored at the end) and its size follows SIGWINCH.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import ssl
import sys
import termios
import threading
import tty
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import click

from paas.cli.client import TIMEOUT, USER_AGENT, ApiError
from paas.cli.common import api, app_option, resolve_app
from paas.errors import PaasError

MAX_HEAD = 64 * 1024
#: gunicorn refuses a header line over 8190 bytes.
MAX_PARAMS = 8000
Send = Callable[[int, bytes], None]


def command_line(args: tuple[str, ...] | list[str]) -> str:
    """One argument is a shell line as it stands (`paas run "rake db:migrate && echo ok"`);
    several are quoted word by word, so `paas run -- python -c "print('hi')"` stays intact."""
    return args[0] if len(args) == 1 else shlex.join(args)


@click.command(
    "run", short_help="Run a one-off command in a dyno of the app.",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@app_option
@click.option("-d", "--detached", is_flag=True,
              help="Run in the background; the output goes to `paas logs`.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_command(app: str | None, detached: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND in a one-off dyno (run.N) of the app's current release, with its config
    vars, and exit with its exit status. Options of paas go before the command:

        paas run -a hello -- python manage.py migrate
    """
    name = resolve_app(app)
    line = command_line(command)
    client = api()
    if detached:
        dyno = client.post(f"apps/{name}/dynos", {"command": line, "attach": False})
        click.echo(f"Running `{line}` on {name} as {dyno['name']}; "
                   f"see its output with `paas logs -a {name}`")
        return
    if not client.token:
        raise PaasError("not logged in; run `paas login` or set PAAS_API_KEY")
    has_tty = sys.stdin.isatty() and sys.stdout.isatty()
    body: dict[str, Any] = {"command": line, "attach": True, "tty": has_tty}
    rows, cols = _terminal_size() if has_tty else (0, 0)
    if rows > 0 and cols > 0:  # a terminal of unknown size (0x0) gets the platform's default
        body["size"] = [rows, cols]
    sock, rest = open_session(client.url, client.token, name, body)
    try:
        code = relay(sock, rest, has_tty)
    except KeyboardInterrupt:
        code = 130  # the platform stops the dyno when the connection closes
    finally:
        sock.close()
    click.get_current_context().exit(code)


def _terminal_size() -> tuple[int, int]:
    size = os.get_terminal_size(sys.stdout.fileno())
    return size.lines, size.columns


# --- the upgrade ----------------------------------------------------------------------------
def open_session(
    url: str, token: str, app: str, body: dict[str, Any]
) -> tuple[socket.socket, bytes]:
    """Send the upgrade request; answer the socket and the bytes after the 101's head. Any
    other answer becomes the API's error."""
    parts = urlsplit(url)
    path = f"{parts.path.rstrip('/')}/api/apps/{app}/dynos"
    # The parameters travel in a header: a proxy takes a body after an upgrade request's
    # head for the new protocol. json.dumps escapes every non-ASCII character and newline.
    params = json.dumps(body)
    if len(params) > MAX_PARAMS:
        raise PaasError(f"the command is too long to run attached ({len(params)} bytes; at "
                        f"most about {MAX_PARAMS}); put it in a script in the app")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
        f"Authorization: Bearer {token}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Accept: application/json\r\nPaas-Run: {params}\r\n"
        "Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: paas-run\r\n\r\n"
    )
    host = parts.hostname or ""
    https = parts.scheme == "https"
    try:
        sock = socket.create_connection((host, parts.port or (443 if https else 80)),
                                        timeout=TIMEOUT[0])
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    except OSError as exc:
        raise PaasError(f"cannot reach the platform at {url}; is `paas up` running?") from exc
    try:
        sock.settimeout(TIMEOUT[1])
        sock.sendall(head.encode("latin-1"))
        status, reason, headers, rest = _read_head(sock)
        if status == 101:
            sock.settimeout(None)
            return sock, rest
        raise _error(sock, status, reason, headers, rest, path)
    except OSError as exc:
        sock.close()
        raise PaasError(f"the connection to the platform at {url} broke: {exc}") from exc
    except BaseException:
        sock.close()
        raise


def _read_head(sock: socket.socket) -> tuple[int, str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk or len(data) > MAX_HEAD:
            raise PaasError("the platform closed the connection without an answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    try:
        _, code, reason = (status_line.split(" ", 2) + [""])[:3]
        status = int(code)
    except ValueError:
        raise PaasError(f"the platform sent a strange answer: {status_line[:80]!r}") from None
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, reason, headers, rest


def _error(sock: socket.socket, status: int, reason: str, headers: dict[str, str],
           body: bytes, path: str) -> PaasError:
    """The ApiError of a non-101 answer, read to its end (its length, or the close)."""
    length = headers.get("content-length", "")
    wanted = int(length) if length.isdigit() else None
    while wanted is None or len(body) < wanted:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return ApiError(data["message"], str(data.get("id", "error")), status)
    return ApiError(f"the platform answered {status} {reason} to POST {path}", "error", status)


# --- the session ----------------------------------------------------------------------------
def relay(sock: socket.socket, rest: bytes, has_tty: bool) -> int:
    """Copy stdin to the dyno and its output here until its exit status comes; answer it."""
    # Imported here, as in the functions below: the runtime package brings Redis and the
    # stacks along, which no other command of the CLI needs.
    from paas.runtime import oneoff

    lock = threading.Lock()

    def send(kind: int, payload: bytes = b"") -> None:
        with lock:
            sock.sendall(oneoff.encode_frame(kind, payload))

    stdin_fd = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin_fd) if has_tty else None
    old_winch = None
    if has_tty:
        tty.setraw(stdin_fd)

        def on_winch(_signum: int, _frame: object) -> None:
            rows, cols = _terminal_size()
            if rows <= 0 or cols <= 0:
                return
            try:
                send(oneoff.RESIZE, f"{rows} {cols}".encode())
            except OSError:
                pass

        old_winch = signal.signal(signal.SIGWINCH, on_winch)
    threading.Thread(target=_pump_stdin, args=(stdin_fd, send), name="stdin",
                     daemon=True).start()
    try:
        return _receive(sock, rest)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)


def _receive(sock: socket.socket, rest: bytes) -> int:
    from paas.runtime import oneoff

    decoder = oneoff.FrameDecoder()
    frames = decoder.feed(rest)
    error = None
    while True:
        for kind, payload in frames:
            if kind == oneoff.STDOUT and payload:
                sys.stdout.buffer.write(payload)
                sys.stdout.buffer.flush()
            elif kind == oneoff.STDERR:
                sys.stderr.buffer.write(payload)
                sys.stderr.buffer.flush()
            elif kind == oneoff.EXIT:
                return int(payload or b"1")
            elif kind == oneoff.ERROR:
                error = payload.decode("utf-8", "replace")
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            raise PaasError(error or "the connection to the platform closed before the "
                            "command ended")
        frames = decoder.feed(data)


def _pump_stdin(fd: int, send: Send) -> None:
    """Forward stdin until its end (then say so); a daemon: it dies with the CLI."""
    from paas.runtime import oneoff

    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                send(oneoff.STDIN_EOF, b"")
                return
            send(oneoff.STDIN, data)
    except OSError:  # stdin is gone, or the connection: the main thread sees the latter
        return
