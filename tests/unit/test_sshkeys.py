"""SSH public keys: parsing and checking what users paste, and keeping them per user."""

from __future__ import annotations

import base64
import struct
import subprocess
from pathlib import Path

import pytest

from paas.errors import Conflict, InvalidInput, NotFound
from paas.sshkeys import parse_public_key
from paas.store import Store


def keygen(tmp_path: Path, kind: str, bits: int | None = None, comment: str = "me@laptop"
           ) -> tuple[str, str]:
    """A fresh key from ssh-keygen: its .pub text and the fingerprint ssh-keygen gives it."""
    path = tmp_path / f"{kind}{bits or ''}"
    size = ["-b", str(bits)] if bits else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *size, "-N", "", "-C", comment,
                    "-f", str(path)], check=True)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], capture_output=True,
                            text=True, check=True).stdout
    return Path(f"{path}.pub").read_text(), listed.split()[1]


@pytest.mark.parametrize(("kind", "bits", "expected_bits"), [
    ("ed25519", None, 256), ("ecdsa", 256, 256), ("ecdsa", 521, 521), ("rsa", 2048, 2048),
])
def test_accepted_keys_parse_with_ssh_keygens_fingerprint(
    tmp_path: Path, kind: str, bits: int | None, expected_bits: int
) -> None:
    text, expected = keygen(tmp_path, kind, bits)
    key = parse_public_key(text)
    assert key.fingerprint == expected
    assert key.bits == expected_bits
    assert key.comment == "me@laptop"
    assert text.startswith(key.openssh + " ")


def test_short_rsa_keys_are_refused_with_the_size_they_have(tmp_path: Path) -> None:
    text, _ = keygen(tmp_path, "rsa", 1024)
    with pytest.raises(InvalidInput, match="this RSA key has 1024 bits; at least 2048"):
        parse_public_key(text)


def test_private_keys_and_other_mistakes_are_explained(tmp_path: Path) -> None:
    keygen(tmp_path, "ed25519")
    with pytest.raises(InvalidInput, match="private key"):
        parse_public_key((tmp_path / "ed25519").read_text())
    with pytest.raises(InvalidInput, match="no SSH public key"):
        parse_public_key("  \n")
    with pytest.raises(InvalidInput, match="'ssh-dss' keys are not accepted"):
        parse_public_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP== me")
    with pytest.raises(InvalidInput, match="not a valid ssh-ed25519 public key"):
        parse_public_key("ssh-ed25519 not-base64!! me")
    text, _ = keygen(tmp_path, "ecdsa", 256, comment="two")
    with pytest.raises(InvalidInput, match="one SSH public key at a time"):
        parse_public_key(text + text)


def _blob(*fields: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(f)) + f for f in fields)).decode()


def test_keys_whose_inside_disagrees_with_their_type_are_invalid() -> None:
    # A key type that names one algorithm while the blob holds another.
    with pytest.raises(InvalidInput, match="not a valid ssh-ed25519"):
        parse_public_key("ssh-ed25519 " + _blob(b"ssh-rsa", b"\x01\x00\x01", b"\x00" * 300))
    with pytest.raises(InvalidInput, match="not a valid ssh-ed25519"):
        parse_public_key("ssh-ed25519 " + _blob(b"ssh-ed25519", b"short"))
    with pytest.raises(InvalidInput, match="not a valid ecdsa-sha2-nistp256"):
        parse_public_key("ecdsa-sha2-nistp256 " + _blob(b"ecdsa-sha2-nistp256", b"nistp384",
                                                        b"\x04" + b"\x01" * 96))
    with pytest.raises(InvalidInput, match="not a valid ecdsa-sha2-nistp256"):
        parse_public_key("ecdsa-sha2-nistp256 " + _blob(b"ecdsa-sha2-nistp256", b"nistp256",
                                                        b"\x04" + b"\x01" * 64))


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "paas.db")
    s.migrate()
    return s


def test_keys_are_kept_per_user_and_found_by_fingerprint_or_id(
    store: Store, tmp_path: Path
) -> None:
    ann = store.create_user("ann")
    text, fingerprint = keygen(tmp_path, "ed25519")
    added = store.add_ssh_key(ann, parse_public_key(text))
    assert added.fingerprint == fingerprint and added.comment == "me@laptop"
    assert added.public_key == text.strip()
    assert store.ssh_keys(ann) == [added]
    assert store.user_for_ssh_key(fingerprint) == ann
    assert store.ssh_key(ann, str(added.id)) == added
    assert store.ssh_key(ann, fingerprint) == added
    assert store.remove_ssh_key(ann, fingerprint) == added
    assert store.ssh_keys(ann) == []
    assert store.user_for_ssh_key(fingerprint) is None


def test_a_key_names_one_user(store: Store, tmp_path: Path) -> None:
    ann, bob = store.create_user("ann"), store.create_user("bob")
    key = parse_public_key(keygen(tmp_path, "ed25519")[0])
    store.add_ssh_key(ann, key)
    with pytest.raises(Conflict, match="already on your account"):
        store.add_ssh_key(ann, key)
    with pytest.raises(Conflict, match="already on another account"):
        store.add_ssh_key(bob, key)
    assert store.ssh_keys(bob) == []
    assert store.user_for_ssh_key(key.fingerprint) == ann


def test_nobody_reaches_or_removes_someone_elses_key(store: Store, tmp_path: Path) -> None:
    ann, bob = store.create_user("ann"), store.create_user("bob")
    added = store.add_ssh_key(ann, parse_public_key(keygen(tmp_path, "ed25519")[0]))
    for ident in (str(added.id), added.fingerprint):
        with pytest.raises(NotFound, match="`paas keys` lists yours"):
            store.remove_ssh_key(bob, ident)
    assert store.ssh_keys(ann) == [added]
