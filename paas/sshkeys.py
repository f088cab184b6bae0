"""SSH public keys as users give them (`ssh-ed25519 AAAA… comment`): parsed, checked, named.

A key is identified by its SHA256 fingerprint, written as `ssh-keygen -l` prints it
(`SHA256:` and unpadded base64), because that is what users can compare by eye and
what the SSH server computes from the key a client offers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from paas.errors import InvalidInput

#: Key types accepted, each with the curve or minimum size it must have.
ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
ECDSA_CURVES = {
    "ecdsa-sha2-nistp256": b"nistp256",
    "ecdsa-sha2-nistp384": b"nistp384",
    "ecdsa-sha2-nistp521": b"nistp521",
}
ACCEPTED_TYPES = (ED25519, *ECDSA_CURVES, RSA)
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
MAX_COMMENT = 200
# An RSA key of MAX_RSA_BITS is under 3 KB of base64; anything much longer is not a key.
MAX_TEXT = 16 * 1024

_HINT = ("give the contents of a .pub file, e.g. ~/.ssh/id_ed25519.pub "
         "(`ssh-keygen -t ed25519` makes one)")


@dataclass(frozen=True)
class PublicKey:
    algorithm: str  # e.g. ssh-ed25519
    blob: bytes  # the key in SSH wire format (the base64 part, decoded)
    comment: str
    bits: int

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    @property
    def openssh(self) -> str:
        """The key as one authorized_keys line, without the comment."""
        return f"{self.algorithm} {base64.b64encode(self.blob).decode()}"


def fingerprint(blob: bytes) -> str:
    """`SHA256:…` of a key in wire format, as `ssh-keygen -l` and OpenSSH's logs show it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class _Reader:
    """Reads the length-prefixed fields of the SSH wire format (RFC 4251)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def string(self) -> bytes:
        if self.pos + 4 > len(self.data):
            raise ValueError("truncated")
        (size,) = struct.unpack(">I", self.data[self.pos:self.pos + 4])
        start, self.pos = self.pos + 4, self.pos + 4 + size
        if self.pos > len(self.data):
            raise ValueError("truncated")
        return self.data[start:self.pos]

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ValueError("trailing bytes")


def parse_public_key(text: str) -> PublicKey:
    """The one OpenSSH public key in `text`; InvalidInput saying what is wrong otherwise."""
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"that is too long to be an SSH public key; {_HINT}")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise InvalidInput(f"no SSH public key given; {_HINT}")
    if lines[0].startswith("-----BEGIN") or "PRIVATE KEY" in lines[0]:
        raise InvalidInput("that is a private key: never share it; give the .pub file next "
                           "to it instead")
    if len(lines) > 1:
        raise InvalidInput(f"give one SSH public key at a time (got {len(lines)} lines); {_HINT}")
    algorithm, _, rest = lines[0].partition(" ")
    encoded, _, comment = rest.strip().partition(" ")
    if algorithm not in ACCEPTED_TYPES:
        raise InvalidInput(
            f"{algorithm[:40]!r} keys are not accepted; use one of {', '.join(ACCEPTED_TYPES)} "
            f"({_HINT})"
        )
    try:
        blob = base64.b64decode(encoded, validate=True)
        bits = _check_blob(algorithm, blob)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"that is not a valid {algorithm} public key; {_HINT}") from None
    if algorithm == RSA and bits < MIN_RSA_BITS:
        raise InvalidInput(f"this RSA key has {bits} bits; at least {MIN_RSA_BITS} are needed "
                           "(or better: `ssh-keygen -t ed25519`)")
    if algorithm == RSA and bits > MAX_RSA_BITS:
        raise InvalidInput(f"this RSA key has {bits} bits; at most {MAX_RSA_BITS} are accepted")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT or not comment.isprintable():
        raise InvalidInput(f"the key's comment must be printable and at most {MAX_COMMENT} "
                           "characters")
    return PublicKey(algorithm, blob, comment, bits)


def _check_blob(algorithm: str, blob: bytes) -> int:
    """The key's size in bits, after checking its fields; ValueError when it is no such key."""
    fields = _Reader(blob)
    if fields.string() != algorithm.encode():
        raise ValueError("the type inside the key differs from the one before it")
    if algorithm == ED25519:
        if len(fields.string()) != 32:
            raise ValueError("an ed25519 key is 32 bytes")
        fields.end()
        bits = 256
    elif algorithm == RSA:
        exponent, modulus = fields.string(), fields.string()
        fields.end()
        if not exponent or not modulus:
            raise ValueError("empty RSA field")
        bits = int.from_bytes(modulus, "big").bit_length()
    else:
        if fields.string() != ECDSA_CURVES[algorithm]:
            raise ValueError("the curve does not match the key type")
        fields.string()
        fields.end()
        bits = int(algorithm[-3:])
    _check_with_asyncssh(algorithm, blob)
    return bits


def _check_with_asyncssh(algorithm: str, blob: bytes) -> None:
    """Let the SSH server's own library load the key: a point off its curve, or numbers no
    RSA key has, fail here rather than at the first push."""
    import asyncssh  # imported late: loading the crypto backends is slow and rarely needed

    try:
        asyncssh.import_public_key(f"{algorithm} {base64.b64encode(blob).decode()}")
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
