"""The SQL of users' SSH public keys, a part of `Store` kept in a module of its own.

Each key belongs to one user, so the SSH server can tell who pushes from the key
alone; a fingerprint is therefore unique across all users. The table is made by
a migration in `paas.store.MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paas.errors import Conflict, NotFound
from paas.sshkeys import PublicKey

if TYPE_CHECKING:
    from paas.store import User


@dataclass(frozen=True)
class SshKey:
    id: int
    user_id: int
    fingerprint: str
    public_key: str  # `type base64 comment`, as the user gave it
    comment: str
    created_at: float


class SshKeyStore:
    """Mixed into `Store`, which provides the connection and transactions."""

    _SSH_KEY_SELECT = (
        "SELECT id, user_id, fingerprint, public_key, comment, created_at FROM ssh_keys"
    )

    if TYPE_CHECKING:
        def _conn(self) -> sqlite3.Connection: ...
        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @staticmethod
    def _ssh_key(row: sqlite3.Row) -> SshKey:
        return SshKey(row["id"], row["user_id"], row["fingerprint"], row["public_key"],
                      row["comment"], row["created_at"])

    def add_ssh_key(self, user: User, key: PublicKey) -> SshKey:
        """Store the user's key; Conflict if this user or another one already has it."""
        line = f"{key.openssh} {key.comment}".strip()
        with self._tx() as c:
            owner = c.execute("SELECT user_id FROM ssh_keys WHERE fingerprint = ?",
                              (key.fingerprint,)).fetchone()
            if owner is not None and owner["user_id"] == user.id:
                raise Conflict(f"the key {key.fingerprint} is already on your account "
                               "(`paas keys` lists them)")
            if owner is not None:
                # The server finds the pusher by key alone, so one key cannot name two users.
                raise Conflict(
                    f"the key {key.fingerprint} is already on another account; a key "
                    "identifies one user, so make a new one for this account "
                    "(`ssh-keygen -t ed25519 -f ~/.ssh/id_paas`) and add its .pub"
                )
            cur = c.execute(
                "INSERT INTO ssh_keys (user_id, fingerprint, public_key, comment, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (user.id, key.fingerprint, line, key.comment, time.time()),
            )
        return self.ssh_key(user, str(cur.lastrowid))

    def ssh_keys(self, user: User) -> list[SshKey]:
        rows = self._conn().execute(
            self._SSH_KEY_SELECT + " WHERE user_id = ? ORDER BY id", (user.id,)
        ).fetchall()
        return [self._ssh_key(r) for r in rows]

    def ssh_key(self, user: User, ident: str) -> SshKey:
        """One of the user's keys, by id or fingerprint; NotFound for anyone else's."""
        rows = self._conn().execute(
            self._SSH_KEY_SELECT + " WHERE user_id = ? AND (fingerprint = ? OR"
            " CAST(id AS TEXT) = ?)", (user.id, ident, ident),
        ).fetchall()
        if not rows:
            raise NotFound(f"you have no SSH key {ident!r}; `paas keys` lists yours")
        return self._ssh_key(rows[0])

    def remove_ssh_key(self, user: User, ident: str) -> SshKey:
        key = self.ssh_key(user, ident)
        with self._tx() as c:
            c.execute("DELETE FROM ssh_keys WHERE id = ?", (key.id,))
        return key

    def user_for_ssh_key(self, fingerprint: str) -> User | None:
        """The user a key offered to the SSH server belongs to, if any."""
        from paas.store import User  # store.py imports this module, so not at the top

        row = self._conn().execute(
            "SELECT u.id, u.name, u.is_admin FROM ssh_keys k JOIN users u ON u.id = k.user_id"
            " WHERE k.fingerprint = ?", (fingerprint,),
        ).fetchone()
        return User(row["id"], row["name"], bool(row["is_admin"])) if row else None

