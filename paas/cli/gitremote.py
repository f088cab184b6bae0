"""Git plumbing: which app the current repo's `paas` remote names, and `paas git:remote`.

The remote URL never holds the token: it goes into ~/.netrc, which git's
libcurl reads, so it stays out of .git/config. An SSH remote (`--ssh`) needs no
token: the key added with `paas keys:add` says who pushes.
"""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlsplit

import click

from paas.cli import netrc_file
from paas.cli.client import url_host
from paas.cli.common import api, app_option, resolve_app
from paas.errors import PaasError

DEFAULT_REMOTE = "paas"
_APP_PATH = re.compile(r"/git/([^/]+?)(?:\.git)?/?$")
# ssh://git@host:2222/app.git, and scp-like git@host:app.git
_SSH_APP_PATH = re.compile(r"^/?([a-z][a-z0-9-]*?)(?:\.git)?/?$")
_SCP_LIKE = re.compile(r"^[^/:]+@(?:\[[^\]]+\]|[^/:]+):(?P<path>.*)$")


def git(*args: str) -> subprocess.CompletedProcess[str]:
    """Run git with an argument list; its output is captured, never shown."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise PaasError("git is not installed; install it and try again") from exc


def app_from_git_url(url: str) -> str | None:
    """The app a git URL like http://host:8080/git/NAME.git (or an SSH one) points at."""
    url = url.strip()
    scp_like = _SCP_LIKE.match(url)
    if scp_like:
        match = _SSH_APP_PATH.match(scp_like.group("path"))
    elif urlsplit(url).scheme == "ssh":
        match = _SSH_APP_PATH.match(urlsplit(url).path)
    else:
        match = _APP_PATH.search(urlsplit(url).path)
    return match.group(1) if match else None


def app_from_remote(remote: str = DEFAULT_REMOTE) -> str | None:
    """The app of the current directory's `paas` remote, or None when there is none."""
    try:
        result = git("remote", "get-url", remote)
    except PaasError:
        return None
    if result.returncode != 0:
        return None
    return app_from_git_url(result.stdout)


def in_git_repo() -> bool:
    result = git("rev-parse", "--git-dir")
    return result.returncode == 0


def set_remote(remote: str, url: str) -> str:
    """Add the remote, or point an existing one at `url`; answer "added" or "updated"."""
    exists = git("remote", "get-url", remote).returncode == 0
    verb = "set-url" if exists else "add"
    result = git("remote", verb, remote, url)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise PaasError(
            f"git remote {verb} {remote} failed: {detail[-1] if detail else 'no reason given'}"
        )
    return "updated" if exists else "added"


@click.command("git:remote")
@app_option
@click.option(
    "-r", "--remote", default=DEFAULT_REMOTE, show_default=True, help="Name of the git remote."
)
@click.option("--ssh", "over_ssh", is_flag=True,
              help="Push over SSH with a key added by `paas keys:add`, not over HTTP.")
def git_remote(app: str | None, remote: str, over_ssh: bool) -> None:
    """Add a git remote for the app.

    Afterwards `git push paas main` deploys; the token goes to ~/.netrc
    (with --ssh, your SSH key says who you are instead).
    """
    if not in_git_repo():
        raise PaasError("not inside a git repository; run `git init` first or cd into your app")
    name = resolve_app(app)
    client = api()
    info = client.get(f"apps/{name}")
    if over_ssh:
        ssh_url = info.get("ssh_git_url")
        if not ssh_url:
            raise PaasError("this platform does not serve git over SSH (its PAAS_SSH_PORT is "
                            "off); leave out --ssh to push over HTTP")
        set_remote(remote, ssh_url)
        click.echo(f"set git remote {remote} to {ssh_url}")
        return
    git_url = info["git_url"]
    host = url_host(git_url)
    if not host:
        raise PaasError(f"the platform gave the git URL {git_url!r}, which has no host")
    set_remote(remote, git_url)
    # Git needs the token too; ~/.netrc keeps it out of .git/config.
    netrc_file.store_password(host, client.token or "")
    click.echo(f"set git remote {remote} to {git_url}")
