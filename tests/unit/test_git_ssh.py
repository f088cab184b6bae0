"""The git SSH server against the real `ssh` and `git` clients, a real store and Redis.

Pushes here go to a branch that does not deploy, so no build worker is needed; the
deploying push over SSH is in tests/e2e/test_ssh.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from dulwich.repo import Repo

from paas import apps
from paas.config import Settings
from paas.git import ssh
from paas.sshkeys import parse_public_key
from paas.store import Store

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs openssh-client")


@dataclass
class Server:
    port: int
    settings: Settings
    store: Store
    keys: dict[str, Path]  # user name -> private key file

    def env(self, user: str) -> dict[str, str]:
        command = (f"ssh -i {self.keys[user]} -o IdentitiesOnly=yes -o BatchMode=yes "
                   "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                   f"-o LogLevel=ERROR -p {self.port}")
        return {**os.environ, "GIT_SSH_COMMAND": command, "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
                "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"}

    def ssh(self, user: str, *args: str, log_level: str = "ERROR", stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        argv = ["ssh", "-i", str(self.keys[user]), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", f"LogLevel={log_level}",
                "-p", str(self.port), *args]
        if stdin is None:
            return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, input=stdin)

    def url(self, app: str) -> str:
        return f"ssh://git@127.0.0.1:{self.port}/{app}.git"


def make_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True)
    return path


@pytest.fixture()
def server(tmp_path: Path, redis_url: str, r: redis.Redis) -> Iterator[Server]:
    s = Settings(home=tmp_path / "home", domain="localhost", http_port=8080,
                 redis_url_override=redis_url, runtime="process", ssh_port=2222)
    s.home.mkdir()
    store = Store(s.db_path)
    store.migrate()
    ann = store.create_user("ann")
    bob = store.create_user("bob")
    apps.create(s, store, r, ann, "hello")
    keys = {"ann": make_key(tmp_path / "ann"), "bob": make_key(tmp_path / "bob"),
            "eve": make_key(tmp_path / "eve")}
    store.add_ssh_key(ann, parse_public_key((tmp_path / "ann.pub").read_text()))
    store.add_ssh_key(bob, parse_public_key((tmp_path / "bob.pub").read_text()))

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    git = ssh.GitService(s, store, redis.Redis.from_url(redis_url))
    acceptor = asyncio.run_coroutine_threadsafe(ssh.listen(git, "127.0.0.1", 0), loop).result()
    yield Server(acceptor.get_port(), s, store, keys)

    async def stop() -> None:  # on the loop's thread: asyncio servers are not thread-safe
        acceptor.close()
        await acceptor.wait_closed()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
    git.r.close()
    store.close()


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "README").write_text("hello\n")
    for argv in (["git", "init", "-q", "-b", "feature"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=T", "-c", "user.email=t@example.com",
                  "commit", "-q", "-m", "first"]):
        subprocess.run(argv, cwd=src, check=True)
    return src


def test_the_host_key_is_made_once_and_kept(server: Server) -> None:
    path = server.settings.ssh_host_key_path
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    before = path.read_bytes()
    made = ssh.load_host_key(path).get_fingerprint("sha256")
    # A restart loads the same key rather than making a new one.
    assert ssh.load_host_key(path).get_fingerprint("sha256") == made
    assert path.read_bytes() == before
    scan = subprocess.run(["ssh-keyscan", "-p", str(server.port), "-t", "ed25519", "127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    offered = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=scan.stdout,
                             capture_output=True, text=True, check=True).stdout.split()[1]
    assert offered == made


def test_a_push_over_ssh_stores_the_branch_and_a_clone_gets_it_back(
    server: Server, work: Path, tmp_path: Path
) -> None:
    push = subprocess.run(["git", "push", server.url("hello"), "feature"], cwd=work,
                          env=server.env("ann"), capture_output=True, text=True, timeout=60)
    assert push.returncode == 0, push.stderr
    assert "remote: Stored refs/heads/feature; only main and master deploy." in push.stderr
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True,
                          text=True, check=True).stdout.strip()
    repo = Repo(str(server.settings.repo_path("hello")))
    assert repo.refs[b"refs/heads/feature"] == head.encode()
    repo.close()

    # The scp-like path (no leading slash) and the path without .git name the same app.
    clone = subprocess.run(
        ["git", "clone", "-q", "-b", "feature",
         f"ssh://git@127.0.0.1:{server.port}/hello", str(tmp_path / "copy")],
        env=server.env("ann"), capture_output=True, text=True, timeout=60)
    assert clone.returncode == 0, clone.stderr
    assert (tmp_path / "copy" / "README").read_text() == "hello\n"


def test_a_user_without_access_hears_what_a_stranger_to_any_app_hears(
    server: Server, work: Path
) -> None:
    theirs = subprocess.run(["git", "push", server.url("hello"), "feature"], cwd=work,
                            env=server.env("bob"), capture_output=True, text=True, timeout=60)
    missing = subprocess.run(["git", "push", server.url("nothere"), "feature"], cwd=work,
                             env=server.env("bob"), capture_output=True, text=True, timeout=60)
    assert theirs.returncode != 0 and missing.returncode != 0
    assert "There is no app named 'hello'. Create it with `paas apps:create hello`." \
        in theirs.stderr
    assert theirs.stderr.replace("hello", "X") == missing.stderr.replace("nothere", "X")
    repo = Repo(str(server.settings.repo_path("hello")))
    assert b"refs/heads/feature" not in repo.refs
    repo.close()


def test_a_key_nobody_added_is_not_let_in(server: Server, work: Path) -> None:
    push = subprocess.run(["git", "push", server.url("hello"), "feature"], cwd=work,
                          env=server.env("eve"), capture_output=True, text=True, timeout=60)
    assert push.returncode != 0
    assert "Permission denied (publickey)" in push.stderr


def test_a_shell_is_refused_with_one_line(server: Server) -> None:
    done = server.ssh("ann", "git@127.0.0.1")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "Hi ann! You are authenticated, but paas has no shell: push with git "
        "(`paas git:remote --ssh` adds the remote).")


def test_other_commands_are_refused(server: Server) -> None:
    done = server.ssh("ann", "git@127.0.0.1", "cat /etc/passwd")
    assert done.returncode == 1
    assert done.stderr.strip() == "paas only serves git push and fetch over SSH, not 'cat'."
    archive = server.ssh("ann", "git@127.0.0.1", "git-upload-archive '/hello.git'")
    assert "not 'git-upload-archive'" in archive.stderr


def test_a_client_speaking_junk_gets_a_line_and_the_session_ends(server: Server) -> None:
    junk = server.ssh("ann", "git@127.0.0.1", "git-receive-pack '/hello.git'",
                      stdin="zzzz this is not git\n")
    assert junk.returncode == 1
    assert "paas: the git command failed on the server; its log says why" in junk.stderr


def test_sftp_and_forwarding_are_refused_with_a_message(server: Server) -> None:
    sftp = server.ssh("ann", "-s", "git@127.0.0.1", "sftp")
    assert sftp.returncode != 0
    assert "paas serves only git over SSH: no sftp (push and fetch with git)." in sftp.stderr
    # ssh shows why a channel could not open only at its default log level.
    forward = server.ssh("ann", "-W", "127.0.0.1:80", "git@127.0.0.1", log_level="INFO")
    assert forward.returncode != 0
    assert "paas serves only git over SSH: no port forwarding." in forward.stderr


def test_parse_command_accepts_the_paths_git_sends() -> None:
    from paas.git.service import GitCommand, Refused, parse_command

    for command in ("git-receive-pack '/hello.git'", "git-receive-pack 'hello.git'",
                    "git-receive-pack '/hello'", "git-receive-pack '/hello.git/'",
                    "git receive-pack 'hello.git'"):
        assert parse_command(command) == GitCommand("git-receive-pack", "hello")
    assert parse_command("git-upload-pack '/x.git'") == GitCommand("git-upload-pack", "x")
    for command in ("ls", "git-receive-pack", "git-receive-pack 'a' 'b'", "'unclosed",
                    "git-upload-archive 'hello.git'", "scp -t /tmp"):
        with pytest.raises(Refused):
            parse_command(command)


def test_the_port_setting_and_the_remote_it_gives() -> None:
    from paas.config import DEFAULT_SSH_PORT, ssh_port_setting
    from paas.errors import PaasError

    assert ssh_port_setting(None) == ssh_port_setting("") == DEFAULT_SSH_PORT
    assert ssh_port_setting("0") is None and ssh_port_setting("OFF") is None
    assert ssh_port_setting("2022") == 2022
    for bad in ("ssh", "70000", "-1"):
        with pytest.raises(PaasError, match="PAAS_SSH_PORT"):
            ssh_port_setting(bad)
    s = Settings(home=Path("/h"), domain="d", http_port=80, redis_url_override=None,
                 runtime="process", ssh_port=22)
    assert s.ssh_git_url("hello", "paas.example.com") == "git@paas.example.com:hello.git"
    assert s.ssh_git_url("hello", "::1") == "git@[::1]:hello.git"
    off = Settings(home=Path("/h"), domain="d", http_port=80, redis_url_override=None,
                   runtime="process")
    assert off.ssh_git_url("hello", "paas.example.com") is None
