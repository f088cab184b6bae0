"""Git over any pair of byte streams: what an SSH command asks for, and serving it.

The SSH server (`paas.git.ssh`) hands each session's command here. Only
`git-receive-pack` and `git-upload-pack` on an app the user may reach are run,
with the same dulwich handlers as the HTTP door (`paas.git.http`), so a push
over SSH builds, streams and is rejected exactly as one over HTTP.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from dulwich.errors import HangupException
from dulwich.protocol import ReceivableProtocol
from dulwich.server import Handler, UploadPackHandler

from paas.errors import NotFound, PaasError
from paas.git.access import app_for_git
from paas.git.receive import AppBackend, DeployingReceivePackHandler, PushContext
from paas.store import Store, User

log = logging.getLogger(__name__)

SERVICES: dict[str, type[Handler]] = {
    "git-receive-pack": DeployingReceivePackHandler,
    "git-upload-pack": UploadPackHandler,
}


class Refused(PaasError):
    """A session asked for something this server does not do; the message says so."""

    id = "forbidden"
    status = 403


@dataclass(frozen=True)
class GitCommand:
    service: str  # git-receive-pack or git-upload-pack
    app: str


def shell_refusal(user: User) -> str:
    return (f"Hi {user.name}! You are authenticated, but paas has no shell: "
            "push with git (`paas git:remote --ssh` adds the remote).")


def parse_command(command: str) -> GitCommand:
    """The git service and app of an SSH exec request such as `git-receive-pack '/app.git'`.

    git sends the path as the URL gives it: `/app.git` for ssh://host/app.git, `app.git`
    for host:app.git; with or without `.git` and a trailing slash, all name the app.
    """
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = []
    # Old clients (and some tools) still say `git receive-pack`.
    if len(argv) == 3 and argv[0] == "git" and f"git-{argv[1]}" in SERVICES:
        argv = [f"git-{argv[1]}", argv[2]]
    if len(argv) != 2 or argv[0] not in SERVICES:
        asked = argv[0][:60] if argv else command[:60]
        raise Refused(f"paas only serves git push and fetch over SSH, not {asked!r}.")
    path = argv[1].strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return GitCommand(argv[0], path)


def serve(
    command: str,
    user: User,
    store: Store,
    r: redis.Redis,
    repo_path: Callable[[str], Path],
    recv: Callable[[int], bytes],
    write: Callable[[bytes], object],
) -> None:
    """Run one git command for `user`: `recv` reads up to n bytes of the client's input
    (b"" at its end), `write` sends bytes back. Refused or NotFound if it may not run."""
    request = parse_command(command)
    try:
        app = app_for_git(store, user, request.app, request.service == "git-receive-pack")
    except NotFound:
        log.info("%s asked for %s of %r: not theirs or no such app",
                 user.name, request.service, request.app)
        raise
    log.info("%s runs %s for %s", user.name, request.service, app.name)
    if request.service == "git-receive-pack":
        store.record_audit(app.name, user, "git_push", {"request": "git push over SSH"})
    backend = AppBackend(str(repo_path(app.name)), PushContext(app=app, user=user,
                                                               store=store, r=r))
    proto = ReceivableProtocol(recv, write)
    handler = SERVICES[request.service](backend, [f"/{app.name}.git"], proto)  # type: ignore[call-arg]
    try:
        handler.handle()
    except HangupException:
        pass  # the client only wanted the refs (`git ls-remote`) and left
    finally:
        handler.repo.close()  # type: ignore[attr-defined]
