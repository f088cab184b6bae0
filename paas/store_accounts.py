"""The accounts part of the store: passwords, API tokens, collaborators and the audit log.

A mixin that `paas.store.Store` inherits, so the SQL stays behind the one
store object while store.py keeps a readable size.

Passwords are hashed with scrypt from the standard library: it is memory-hard
like argon2, needs no compiled dependency, and its parameters are kept in the
stored hash so they can be raised later without invalidating old passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paas.errors import Conflict, NotFound
from paas.store_ranges import KeyRange, range_sql

if TYPE_CHECKING:
    from paas.store import App, User

#: Roles a collaborator can have, weakest first (see paas.permissions).
ROLES = ("view", "deploy", "owner")

# scrypt cost: 2**15 * 8 * 128 bytes = 32 MiB of memory per check, ~50-100 ms.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
#: Refuse stored hashes that would make one check cost more than this much memory.
SCRYPT_MAX_MEMORY = 256 * 1024 * 1024
# A hash to check unknown users' passwords against, so a login's timing does not
# tell whether the name exists.
_DUMMY_HASH: str | None = None

ACCOUNTS_MIGRATION = """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_name TEXT NOT NULL,
        user_name TEXT,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE INDEX audit_log_app ON audit_log (app_name, id);
    CREATE INDEX collaborators_user ON collaborators (user_id);
    ALTER TABLE tokens ADD COLUMN last_used_at REAL;
"""


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` (hex), parameters kept so they can change later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches a stored `scrypt$N$r$p$salt$hash` hash. A missing hash
    costs the same work as a real one; a hash asking for more memory than
    SCRYPT_MAX_MEMORY per check (a tampered row) is refused rather than computed."""
    global _DUMMY_HASH
    if not stored:
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_hex(8))
        verify_password(password, _DUMMY_HASH)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        cost_n, cost_r, cost_p = int(n), int(r), int(p)
        salt_bytes, expected = bytes.fromhex(salt), bytes.fromhex(digest)
    except ValueError:
        return False
    needed = 128 * cost_r * (cost_n + cost_p + 2)
    if (scheme != "scrypt" or not expected or cost_n < 2 or cost_r < 1 or cost_p < 1
            or needed > SCRYPT_MAX_MEMORY):
        return False
    computed = hashlib.scrypt(password.encode(), salt=salt_bytes, n=cost_n, r=cost_r,
                              p=cost_p, maxmem=needed + 1024 * 1024, dklen=len(expected))
    return hmac.compare_digest(computed, expected)


@dataclass(frozen=True)
class TokenInfo:
    id: int
    description: str
    created_at: float
    last_used_at: float | None


@dataclass(frozen=True)
class Collaborator:
    user: str
    role: str
    is_app_owner: bool  # the app's owner (apps.owner_id), as opposed to a collaborator


@dataclass(frozen=True)
class AuditEntry:
    id: int
    app: str
    user: str | None
    action: str
    detail: dict[str, Any]
    created_at: float


class AccountsMixin:
    """Users' passwords and tokens, collaborators, audit log. Needs Store's connection."""

    if TYPE_CHECKING:
        def _conn(self) -> sqlite3.Connection: ...
        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def user_by_name(self, name: str) -> User | None: ...
        def app(self, name: str) -> App: ...

    # --- users ----------------------------------------------------------------------
    def users(self) -> list[User]:
        from paas.store import User

        rows = self._conn().execute(
            "SELECT id, name, is_admin FROM users ORDER BY name"
        ).fetchall()
        return [User(r["id"], r["name"], bool(r["is_admin"])) for r in rows]

    def set_password(self, user: User, password: str) -> None:
        hashed = hash_password(password)
        with self._tx() as c:
            c.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hashed, user.id))

    def user_for_password(self, name: str, password: str) -> User | None:
        """The user, if the password is theirs; None otherwise (same work either way)."""
        row = self._conn().execute(
            "SELECT password_hash FROM users WHERE name = ?", (name,)
        ).fetchone()
        if not verify_password(password, row["password_hash"] if row else None):
            return None
        return self.user_by_name(name)

    def session_stamp(self, name: str, token_id: int | None = None) -> str | None:
        """A short digest of what a dashboard session stands on: the user, their password
        hash and, for a session opened with an API token, that token. It changes when the
        password does; None once the user, or that token, is gone."""
        row = self._conn().execute(
            "SELECT id, password_hash FROM users WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        parts = [str(row["id"]), row["password_hash"] or ""]
        if token_id is not None:
            token = self._conn().execute(
                "SELECT token_hash FROM tokens WHERE id = ? AND user_id = ?",
                (token_id, row["id"]),
            ).fetchone()
            if token is None:
                return None
            parts.append(token["token_hash"])
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    # --- tokens ---------------------------------------------------------------------
    def token_id(self, token: str) -> int | None:
        """The id of a valid API token (a session opened with it ends when it is revoked)."""
        from paas.store import hash_token

        row = self._conn().execute(
            "SELECT id FROM tokens WHERE token_hash = ?", (hash_token(token),)
        ).fetchone()
        return row["id"] if row else None

    def create_token_record(self, user: User, description: str = "") -> tuple[TokenInfo, str]:
        """A new token: its record and the plain token, which is never stored."""
        from paas.store import hash_token

        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO tokens (user_id, token_hash, description, created_at)"
                " VALUES (?, ?, ?, ?)",
                (user.id, hash_token(token), description, now),
            )
        return TokenInfo(cur.lastrowid or 0, description, now, None), token

    def tokens(self, user: User) -> list[TokenInfo]:
        rows = self._conn().execute(
            "SELECT id, description, created_at, last_used_at FROM tokens"
            " WHERE user_id = ? ORDER BY id", (user.id,)
        ).fetchall()
        return [TokenInfo(r["id"], r["description"], r["created_at"], r["last_used_at"])
                for r in rows]

    def revoke_token(self, user: User, token_id: int) -> None:
        removed = 0
        if token_id < 2**63:  # past SQLite's integers no token can be
            with self._tx() as c:
                removed = c.execute("DELETE FROM tokens WHERE id = ? AND user_id = ?",
                                    (token_id, user.id)).rowcount
        if removed == 0:
            raise NotFound(f"you have no token {token_id}; `paas tokens` lists yours")

    def user_for_api_token(self, token: str) -> User | None:
        """The token's user, noting when the token was last used. The note is written at
        most once a minute: a write per request would queue every API call on SQLite's
        single write lock."""
        from paas.store import User, hash_token

        hashed = hash_token(token)
        row = self._conn().execute(
            "SELECT u.id, u.name, u.is_admin, t.last_used_at FROM tokens t"
            " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?", (hashed,)
        ).fetchone()
        if row is None:
            return None
        now = time.time()
        if row["last_used_at"] is None or row["last_used_at"] < now - 60:
            with self._tx() as c:
                c.execute("UPDATE tokens SET last_used_at = ? WHERE token_hash = ?",
                          (now, hashed))
        return User(row["id"], row["name"], bool(row["is_admin"]))

    # --- collaborators --------------------------------------------------------------
    def role_of(self, user: User, app: App) -> str | None:
        """The user's role on the app: its owner is `owner`; None if they have none."""
        if app.owner_id == user.id:
            return "owner"
        row = self._conn().execute(
            "SELECT role FROM collaborators WHERE app_id = ? AND user_id = ?", (app.id, user.id)
        ).fetchone()
        return row["role"] if row else None

    def collaborators(self, app: App) -> list[Collaborator]:
        """The app's owner first, then its collaborators by name."""
        rows = self._conn().execute(
            "SELECT u.name, c.role FROM collaborators c JOIN users u ON u.id = c.user_id"
            " WHERE c.app_id = ? ORDER BY u.name", (app.id,)
        ).fetchall()
        return [Collaborator(app.owner, "owner", True)] + [
            Collaborator(r["name"], r["role"], False) for r in rows
        ]

    def set_collaborator(self, app: App, user: User, role: str, *, create: bool) -> None:
        """Add (create=True; 409 if there) or change (404 if absent) a collaborator."""
        assert role in ROLES, role
        if user.id == app.owner_id:
            raise Conflict(f"{user.name} owns {app.name}; `paas apps:transfer` gives it away")
        with self._tx() as c:
            exists = c.execute("SELECT 1 FROM collaborators WHERE app_id = ? AND user_id = ?",
                               (app.id, user.id)).fetchone()
            if create and exists:
                raise Conflict(f"{user.name} is already a collaborator on {app.name}")
            if not create and not exists:
                raise NotFound(f"{user.name} is not a collaborator on {app.name}")
            c.execute(
                "INSERT INTO collaborators (app_id, user_id, role) VALUES (?, ?, ?)"
                " ON CONFLICT (app_id, user_id) DO UPDATE SET role = excluded.role",
                (app.id, user.id, role),
            )

    def remove_collaborator(self, app: App, user: User) -> None:
        """Take a collaborator off the app; its owner cannot be taken off (the app always
        keeps one), only replaced by a transfer."""
        if user.id == app.owner_id:
            raise Conflict(f"{user.name} owns {app.name}: transfer it to someone else first "
                           "(`paas apps:transfer`)")
        with self._tx() as c:
            cur = c.execute("DELETE FROM collaborators WHERE app_id = ? AND user_id = ?",
                            (app.id, user.id))
        if cur.rowcount == 0:
            raise NotFound(f"{user.name} is not a collaborator on {app.name}")

    def transfer_app(self, app: App, new_owner: User) -> App:
        """Make `new_owner` the owner; the previous owner stays on as a deploy collaborator
        (as on Heroku), and the new owner's collaborator entry, if any, goes."""
        if new_owner.id == app.owner_id:
            raise Conflict(f"{new_owner.name} already owns {app.name}")
        with self._tx() as c:
            c.execute("DELETE FROM collaborators WHERE app_id = ? AND user_id = ?",
                      (app.id, new_owner.id))
            c.execute("INSERT OR REPLACE INTO collaborators (app_id, user_id, role)"
                      " VALUES (?, ?, 'deploy')", (app.id, app.owner_id))
            c.execute("UPDATE apps SET owner_id = ? WHERE id = ?", (new_owner.id, app.id))
        return self.app(app.name)

    # --- audit log ------------------------------------------------------------------
    def record_audit(self, app_name: str, user: User | None, action: str,
                     detail: dict[str, Any] | None = None) -> None:
        """Note who did what to which app. Kept by app name, so it outlives the app."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO audit_log (app_name, user_name, action, detail, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (app_name, user.name if user else None, action,
                 json.dumps(detail or {}, sort_keys=True), time.time()),
            )

    def audit(self, app: App, limit: int = 100) -> list[AuditEntry]:
        """The app's newest audit entries, newest first."""
        return self.audit_in(app, KeyRange(descending=True, limit=limit))

    def audit_in(self, app: App, window: KeyRange) -> list[AuditEntry]:
        """The app's audit entries in a range of ids (their order). Entries of an earlier
        app of the same name (destroyed, then the name taken again) predate this one and
        are left out."""
        where, params = range_sql("id", window)
        rows = self._conn().execute(
            "SELECT id, app_name, user_name, action, detail, created_at FROM audit_log"
            " WHERE app_name = ? AND created_at >= ?" + where,
            (app.name, app.created_at, *params),
        ).fetchall()
        return list(_audit_entries(rows))


def _audit_entries(rows: list[sqlite3.Row]) -> Iterator[AuditEntry]:
    for r in rows:
        yield AuditEntry(r["id"], r["app_name"], r["user_name"], r["action"],
                         json.loads(r["detail"]), r["created_at"])
