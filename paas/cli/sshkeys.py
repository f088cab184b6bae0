"""`paas keys`, `keys:add` and `keys:remove`: the SSH public keys that let you push over SSH."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from paas.cli.common import api, echo_json, json_option, table
from paas.errors import PaasError

#: Tried in this order when keys:add is given no file, as `ssh` itself prefers them.
DEFAULT_KEY_FILES = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")


def default_key_file(ssh_dir: Path | None = None) -> Path:
    """The first public key of ~/.ssh that `ssh` would offer."""
    ssh_dir = ssh_dir or Path.home() / ".ssh"
    for name in DEFAULT_KEY_FILES:
        if (ssh_dir / name).is_file():
            return ssh_dir / name
    raise PaasError(f"no public key in {ssh_dir} ({', '.join(DEFAULT_KEY_FILES)}); make one "
                    "with `ssh-keygen -t ed25519` or give the .pub file to add")


@click.command("keys")
@json_option
def keys_list(as_json: bool) -> None:
    """List the SSH keys on your account."""
    keys = api().get("account/keys")
    if as_json:
        echo_json(keys)
    elif not keys:
        click.echo("You have no SSH keys; `paas keys:add` adds ~/.ssh/id_ed25519.pub")
    else:
        click.echo("=== Your SSH keys")
        click.echo(table([(k["fingerprint"], k["comment"]) for k in keys]))


@click.command("keys:add")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def keys_add(path: Path | None) -> None:
    """Add an SSH public key (default: ~/.ssh/id_ed25519.pub, then id_ecdsa, id_rsa)."""
    path = path or default_key_file()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PaasError(f"cannot read {path}: {exc}") from exc
    key = api().post("account/keys", {"public_key": text})
    click.echo(f"Added {path} ({key['fingerprint']}); push over SSH with "
               "`paas git:remote --ssh`")


@click.command("keys:remove")
@click.argument("key")
def keys_remove(key: str) -> None:
    """Remove an SSH key, named by its fingerprint (SHA256:…) or its comment."""
    client = api()
    if not key.startswith("SHA256:") and not key.isdigit():
        matches = [k for k in client.get("account/keys") if k["comment"] == key]
        if len(matches) > 1:
            raise PaasError(f"{len(matches)} keys have the comment {key!r}; remove one by its "
                            "fingerprint (`paas keys` lists them)")
        if not matches:
            raise PaasError(f"you have no SSH key {key!r}; `paas keys` lists yours")
        key = matches[0]["fingerprint"]
    removed = client.delete(f"account/keys/{quote(key, safe='')}")
    click.echo(f"Removed {removed['fingerprint']} {removed['comment']}".rstrip())
