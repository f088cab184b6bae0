"""Durable state in SQLite: the schema, its migrations and every SQL statement.

Apps, builds, releases, config vars, formation, users and tokens live here
(SSH keys' SQL is in `paas.store_keys`, mixed in).
Redis holds only what can be rebuilt from this file and the running host.
Callers get plain dataclasses, never rows or cursors.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paas.errors import Conflict, NotFound
from paas.store_accounts import ACCOUNTS_MIGRATION, AccountsMixin
from paas.store_keys import SshKeyStore
from paas.store_ranges import KeyRange, range_sql
from paas.store_routing import RoutingStore
from paas.store_sources import SOURCES_MIGRATION, SourcesMixin

MIGRATIONS: list[str] = [
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        is_admin INTEGER NOT NULL DEFAULT 0,
        password_hash TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE TABLE apps (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        owner_id INTEGER NOT NULL REFERENCES users(id),
        restart_seq INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE collaborators (
        app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        PRIMARY KEY (app_id, user_id)
    );
    CREATE TABLE config_vars (
        app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (app_id, key)
    );
    CREATE TABLE builds (
        id INTEGER PRIMARY KEY,
        app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        user_id INTEGER REFERENCES users(id),
        status TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        ref TEXT NOT NULL,
        failure TEXT,
        output TEXT,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE TABLE releases (
        id INTEGER PRIMARY KEY,
        app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        build_id INTEGER REFERENCES builds(id),
        slug TEXT,
        commit_sha TEXT,
        config TEXT NOT NULL,
        process_types TEXT NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        user_id INTEGER REFERENCES users(id),
        created_at REAL NOT NULL,
        UNIQUE (app_id, version)
    );
    CREATE TABLE formation (
        app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        PRIMARY KEY (app_id, type)
    );
    """,
    # Every app runs as its own uid/gid (containers), allocated once and never reused.
    """
    ALTER TABLE apps ADD COLUMN uid INTEGER;
    CREATE TABLE uid_allocations (uid INTEGER PRIMARY KEY);
    UPDATE apps SET uid = 200000 + id - 1;
    INSERT INTO uid_allocations (uid) SELECT uid FROM apps;
    """,
    # Dyno sizes per process type (paas.sizes).
    """
    ALTER TABLE formation ADD COLUMN size TEXT NOT NULL DEFAULT 'standard-1x';
    """,
    # The buildpacks an app asked for (paas buildpacks:add/set), in order.
    """
    CREATE TABLE app_buildpacks (
        app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        url TEXT NOT NULL,
        PRIMARY KEY (app_id, position)
    );
    """,
    # Build ids are never reused, even after the app that had the newest one is destroyed:
    # a build's id names its output stream and its job, and users quote it.
    """
    CREATE TABLE builds_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        user_id INTEGER REFERENCES users(id),
        status TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        ref TEXT NOT NULL,
        failure TEXT,
        output TEXT,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    INSERT INTO builds_new SELECT id, app_id, user_id, status, commit_sha, ref, failure,
        output, created_at, finished_at FROM builds;
    DROP TABLE builds;
    ALTER TABLE builds_new RENAME TO builds;
    """,
    # The release life cycle: what app.json asked of a release (health checks, deploy
    # scripts), the output of its release phase, and per-app boot and stop timeouts
    # (NULL: the platform's default).
    """
    ALTER TABLE releases ADD COLUMN app_json TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE releases ADD COLUMN output TEXT;
    ALTER TABLE apps ADD COLUMN boot_timeout INTEGER;
    ALTER TABLE apps ADD COLUMN stop_timeout INTEGER;
    """,
    # Reaching an app (paas.store_routing): custom domains, each owned by one app;
    # maintenance mode and HTTPS redirect; the app's TLS certificate.
    """
    CREATE TABLE domains (
        hostname TEXT PRIMARY KEY,
        app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        created_at REAL NOT NULL
    );
    CREATE INDEX domains_app ON domains (app_id);
    CREATE TABLE app_routing (
        app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
        maintenance INTEGER NOT NULL DEFAULT 0,
        https_redirect INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE certificates (
        app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
        cert_pem TEXT NOT NULL,
        key_pem TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # Users' SSH public keys (paas.store_keys); a key names one user, so the fingerprint
    # is unique across all of them.
    """
    CREATE TABLE ssh_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        fingerprint TEXT NOT NULL UNIQUE,
        public_key TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE INDEX ssh_keys_user ON ssh_keys (user_id);
    """,
    # Accounts: the audit log, a faster "apps I collaborate on", tokens' last use.
    ACCOUNTS_MIGRATION,
    # Builds from a source tarball (URL or upload) rather than a git push.
    SOURCES_MIGRATION,
]

#: Apps' uids start here, well above any host account.
FIRST_APP_UID = 200_000

BUILD_STATES = ("pending", "building", "succeeded", "failed")
RELEASE_STATES = ("pending", "succeeded", "failed")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    is_admin: bool


@dataclass(frozen=True)
class App:
    id: int
    name: str
    owner_id: int
    owner: str
    restart_seq: int
    created_at: float
    uid: int
    boot_timeout: int | None = None  # seconds a web dyno has to bind $PORT; None: default
    stop_timeout: int | None = None  # seconds between SIGTERM and SIGKILL; None: default


@dataclass(frozen=True)
class Build:
    id: int
    app_id: int
    status: str
    commit_sha: str
    ref: str
    failure: str | None
    user: str | None
    created_at: float
    finished_at: float | None


@dataclass(frozen=True)
class Release:
    id: int
    app_id: int
    version: int
    build_id: int | None
    slug: str | None
    commit_sha: str | None
    config: dict[str, str]
    process_types: dict[str, str]
    description: str
    status: str
    status_reason: str | None
    user: str | None
    created_at: float
    app_json: dict[str, Any] = field(default_factory=dict)
    output: str | None = None  # the release phase's output


@dataclass(frozen=True)
class DeploySummary:
    """An app's deploys at a glance (Store.deploy_summaries)."""

    current: int | None  # the version serving traffic
    to_run: int | None  # the newest version that has not failed
    to_run_has_image: bool
    wanted: int  # dynos the formation asks for, all types


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Store(RoutingStore, SshKeyStore, AccountsMixin, SourcesMixin):
    """All SQL of the platform. One instance per process; safe across threads.

    Sections of it live in mixins: routing (domains, maintenance, certificates) in
    paas.store_routing, users' SSH keys in paas.store_keys, accounts (audit log,
    roles, tokens) in paas.store_accounts, source builds in paas.store_sources."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()

    # --- connection and schema ------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def migrate(self) -> None:
        """Bring the schema up to date; safe to call on every start."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        # Tables are rebuilt by some migrations (SQLite's way to change a column), which
        # needs foreign keys off for the while; they are checked again at the end.
        conn.execute("PRAGMA foreign_keys=OFF")
        try:
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                conn.executescript(
                    f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
                )
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the database has broken references: {broken[:3]}")
        finally:
            conn.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- users and tokens --------------------------------------------------------
    def create_user(self, name: str, is_admin: bool = False) -> User:
        with self._tx() as c:
            if c.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"a user named {name!r} already exists")
            cur = c.execute(
                "INSERT INTO users (name, is_admin, created_at) VALUES (?, ?, ?)",
                (name, int(is_admin), time.time()),
            )
        return User(cur.lastrowid, name, is_admin)

    def user_by_name(self, name: str) -> User | None:
        row = self._conn().execute(
            "SELECT id, name, is_admin FROM users WHERE name = ?", (name,)
        ).fetchone()
        return User(row["id"], row["name"], bool(row["is_admin"])) if row else None

    def create_token(self, user_id: int, description: str = "") -> str:
        """Create an API token for the user; the plain token is returned once, stored hashed."""
        token = secrets.token_urlsafe(32)
        with self._tx() as c:
            c.execute(
                "INSERT INTO tokens (user_id, token_hash, description, created_at)"
                " VALUES (?, ?, ?, ?)",
                (user_id, hash_token(token), description, time.time()),
            )
        return token

    def user_for_token(self, token: str) -> User | None:
        row = self._conn().execute(
            "SELECT u.id, u.name, u.is_admin FROM tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.token_hash = ?",
            (hash_token(token),),
        ).fetchone()
        return User(row["id"], row["name"], bool(row["is_admin"])) if row else None

    # --- apps ---------------------------------------------------------------------
    _APP_SELECT = (
        "SELECT a.id, a.name, a.owner_id, u.name AS owner, a.restart_seq, a.created_at, a.uid,"
        " a.boot_timeout, a.stop_timeout"
        " FROM apps a JOIN users u ON u.id = a.owner_id"
    )

    @staticmethod
    def _app(row: sqlite3.Row) -> App:
        return App(
            row["id"], row["name"], row["owner_id"], row["owner"],
            row["restart_seq"], row["created_at"], row["uid"],
            row["boot_timeout"], row["stop_timeout"],
        )

    def create_app(self, name: str, owner_id: int) -> App:
        with self._tx() as c:
            if c.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"the name {name!r} is already taken; choose another")
            uid = c.execute(
                "SELECT COALESCE(MAX(uid) + 1, ?) FROM uid_allocations", (FIRST_APP_UID,)
            ).fetchone()[0]
            c.execute("INSERT INTO uid_allocations (uid) VALUES (?)", (uid,))
            c.execute(
                "INSERT INTO apps (name, owner_id, created_at, uid) VALUES (?, ?, ?, ?)",
                (name, owner_id, time.time(), uid),
            )
        return self.app(name)

    def find_app(self, name: str) -> App | None:
        row = self._conn().execute(self._APP_SELECT + " WHERE a.name = ?", (name,)).fetchone()
        return self._app(row) if row else None

    def app(self, name: str) -> App:
        found = self.find_app(name)
        if found is None:
            raise NotFound(f"no app named {name!r}; `paas apps` lists yours")
        return found

    def apps(self, user: User | None = None) -> list[App]:
        """All apps, or those the user may reach (admins reach all)."""
        if user is None or user.is_admin:
            rows = self._conn().execute(self._APP_SELECT + " ORDER BY a.name").fetchall()
        else:
            rows = self._conn().execute(
                self._APP_SELECT + " WHERE a.owner_id = ? OR a.id IN"
                " (SELECT app_id FROM collaborators WHERE user_id = ?) ORDER BY a.name",
                (user.id, user.id),
            ).fetchall()
        return [self._app(r) for r in rows]

    def can_access(self, user: User, app: App) -> bool:
        if user.is_admin or app.owner_id == user.id:
            return True
        return bool(self._conn().execute(
            "SELECT 1 FROM collaborators WHERE app_id = ? AND user_id = ?", (app.id, user.id)
        ).fetchone())

    def delete_app(self, app: App) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM apps WHERE id = ?", (app.id,))

    def bump_restart(self, app: App) -> int:
        """Ask for a rolling restart of the app's dynos; returns the new sequence number."""
        with self._tx() as c:
            c.execute("UPDATE apps SET restart_seq = restart_seq + 1 WHERE id = ?", (app.id,))
            return c.execute(
                "SELECT restart_seq FROM apps WHERE id = ?", (app.id,)
            ).fetchone()[0]

    # --- config vars -------------------------------------------------------------
    def config_vars(self, app: App) -> dict[str, str]:
        rows = self._conn().execute(
            "SELECT key, value FROM config_vars WHERE app_id = ? ORDER BY key", (app.id,)
        ).fetchall()
        return {r["key"]: r["value"] for r in rows}

    def update_config(self, app: App, changes: dict[str, str | None]) -> dict[str, str]:
        """Set (or, with None, unset) config vars; returns the whole new config."""
        with self._tx() as c:
            for key, value in changes.items():
                if value is None:
                    c.execute("DELETE FROM config_vars WHERE app_id = ? AND key = ?",
                              (app.id, key))
                else:
                    c.execute(
                        "INSERT INTO config_vars (app_id, key, value) VALUES (?, ?, ?)"
                        " ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
                        (app.id, key, value),
                    )
        return self.config_vars(app)

    # --- builds ------------------------------------------------------------------
    _BUILD_SELECT = (
        "SELECT b.id, b.app_id, b.status, b.commit_sha, b.ref, b.failure, u.name AS user,"
        " b.created_at, b.finished_at FROM builds b LEFT JOIN users u ON u.id = b.user_id"
    )

    @staticmethod
    def _build(row: sqlite3.Row) -> Build:
        return Build(
            row["id"], row["app_id"], row["status"], row["commit_sha"], row["ref"],
            row["failure"], row["user"], row["created_at"], row["finished_at"],
        )

    def create_build(self, app: App, user: User | None, commit_sha: str, ref: str) -> Build:
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO builds (app_id, user_id, status, commit_sha, ref, created_at)"
                " VALUES (?, ?, 'pending', ?, ?, ?)",
                (app.id, user.id if user else None, commit_sha, ref, time.time()),
            )
        return self.build(cur.lastrowid)

    def build(self, build_id: int) -> Build:
        # An id past SQLite's 64-bit integers (a URL can carry any) is simply not there.
        row = self._conn().execute(self._BUILD_SELECT + " WHERE b.id = ?",
                                   (build_id,)).fetchone() if build_id < 2**63 else None
        if row is None:
            raise NotFound(f"no build {build_id}")
        return self._build(row)

    def app_build(self, app: App, build_id: int) -> Build:
        build = self.build(build_id)
        if build.app_id != app.id:
            raise NotFound(f"no build {build_id} for {app.name}")
        return build

    def builds(self, app: App, limit: int = 50) -> list[Build]:
        """The app's newest builds, newest first."""
        return self.builds_in(app, KeyRange(descending=True, limit=limit))

    def builds_in(self, app: App, window: KeyRange) -> list[Build]:
        """The app's builds in a range of ids (their order of creation)."""
        where, params = range_sql("b.id", window)
        rows = self._conn().execute(self._BUILD_SELECT + " WHERE b.app_id = ?" + where,
                                    (app.id, *params)).fetchall()
        return [self._build(r) for r in rows]

    def set_build_status(self, build_id: int, status: str, failure: str | None = None) -> None:
        assert status in BUILD_STATES, status
        done = time.time() if status in ("succeeded", "failed") else None
        with self._tx() as c:
            c.execute(
                "UPDATE builds SET status = ?, failure = ?, finished_at = ? WHERE id = ?",
                (status, failure, done, build_id),
            )

    def set_build_output(self, build_id: int, output: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE builds SET output = ? WHERE id = ?", (output, build_id))

    def build_output(self, build_id: int) -> str | None:
        row = self._conn().execute(
            "SELECT output FROM builds WHERE id = ?", (build_id,)
        ).fetchone()
        return row["output"] if row else None

    # --- releases ----------------------------------------------------------------
    _RELEASE_SELECT = (
        "SELECT r.id, r.app_id, r.version, r.build_id, r.slug, r.commit_sha, r.config,"
        " r.process_types, r.description, r.status, r.status_reason, u.name AS user,"
        " r.created_at, r.app_json, r.output"
        " FROM releases r LEFT JOIN users u ON u.id = r.user_id"
    )

    @staticmethod
    def _release(row: sqlite3.Row) -> Release:
        return Release(
            row["id"], row["app_id"], row["version"], row["build_id"], row["slug"],
            row["commit_sha"], json.loads(row["config"]), json.loads(row["process_types"]),
            row["description"], row["status"], row["status_reason"], row["user"],
            row["created_at"], json.loads(row["app_json"]), row["output"],
        )

    def create_release(
        self,
        app: App,
        *,
        description: str,
        user: User | None,
        config: dict[str, str],
        build: Build | None = None,
        slug: str | None = None,
        commit_sha: str | None = None,
        process_types: dict[str, str] | None = None,
        app_json: dict[str, Any] | None = None,
    ) -> Release:
        """Add release vN+1 (status pending) and its default formation."""
        with self._tx() as c:
            version = c.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM releases WHERE app_id = ?",
                (app.id,),
            ).fetchone()[0]
            cur = c.execute(
                "INSERT INTO releases (app_id, version, build_id, slug, commit_sha, config,"
                " process_types, description, status, user_id, created_at, app_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (
                    app.id, version, build.id if build else None, slug, commit_sha,
                    json.dumps(config), json.dumps(process_types or {}), description,
                    user.id if user else None, time.time(), json.dumps(app_json or {}),
                ),
            )
            # Heroku's default: the first time a web process exists, run one.
            for ptype in process_types or {}:
                c.execute(
                    "INSERT OR IGNORE INTO formation (app_id, type, quantity) VALUES (?, ?, ?)",
                    (app.id, ptype, 1 if ptype == "web" else 0),
                )
        return self._release(
            self._conn().execute(self._RELEASE_SELECT + " WHERE r.id = ?",
                                 (cur.lastrowid,)).fetchone()
        )

    def release(self, app: App, version: int) -> Release:
        row = self._conn().execute(
            self._RELEASE_SELECT + " WHERE r.app_id = ? AND r.version = ?", (app.id, version)
        ).fetchone() if version < 2**63 else None
        if row is None:
            raise NotFound(f"{app.name} has no release v{version}; `paas releases` lists them")
        return self._release(row)

    def releases(self, app: App, limit: int = 50) -> list[Release]:
        """The app's newest releases, newest first."""
        return self.releases_in(app, KeyRange(descending=True, limit=limit))

    def releases_in(self, app: App, window: KeyRange) -> list[Release]:
        """The app's releases in a range of versions."""
        where, params = range_sql("r.version", window)
        rows = self._conn().execute(self._RELEASE_SELECT + " WHERE r.app_id = ?" + where,
                                    (app.id, *params)).fetchall()
        return [self._release(r) for r in rows]

    def current_release(self, app: App) -> Release | None:
        """The release serving traffic: the newest one that deployed."""
        row = self._conn().execute(
            self._RELEASE_SELECT + " WHERE r.app_id = ? AND r.status = 'succeeded'"
            " ORDER BY r.version DESC LIMIT 1", (app.id,)
        ).fetchone()
        return self._release(row) if row else None

    def deploy_fingerprints(self) -> dict[str, str]:
        """Per app, one string that changes whenever what it should run changes: its
        release to deploy (and that release's status), restart sequence, formation and
        timeouts. The agent skips apps whose fingerprint is the one it last settled."""
        rows = self._conn().execute(
            "SELECT a.name, a.restart_seq, a.boot_timeout, a.stop_timeout,"
            " (SELECT r.version || ':' || r.status FROM releases r WHERE r.app_id = a.id"
            "  AND r.status != 'failed' ORDER BY r.version DESC LIMIT 1) AS rel,"
            " (SELECT group_concat(f.type || '=' || f.quantity || '/' || f.size, ',')"
            "  FROM formation f WHERE f.app_id = a.id) AS formation"
            " FROM apps a"
        ).fetchall()
        return {row["name"]: "|".join(str(v) for v in tuple(row)[1:]) for row in rows}

    def current_versions(self) -> dict[int, int]:
        """App id -> the version of its current release, for every app in one query (an
        apps list would otherwise ask once per app)."""
        rows = self._conn().execute(
            "SELECT app_id, MAX(version) AS version FROM releases WHERE status = 'succeeded'"
            " GROUP BY app_id"
        ).fetchall()
        return {r["app_id"]: r["version"] for r in rows}

    def deploy_summaries(self, app: App | None = None) -> dict[int, DeploySummary]:
        """App id -> what an apps list shows of its deploys, for every app (or `app`
        alone) in one query: the current version, the version to run and whether it has
        an image, and how many dynos its formation wants."""
        rows = self._conn().execute(
            "SELECT a.id,"
            " (SELECT MAX(r.version) FROM releases r WHERE r.app_id = a.id"
            "  AND r.status = 'succeeded') AS current,"
            " (SELECT r.version || ':' || (COALESCE(r.slug, '') != '') FROM releases r"
            "  WHERE r.app_id = a.id AND r.status != 'failed'"
            "  ORDER BY r.version DESC LIMIT 1) AS to_run,"
            " (SELECT COALESCE(SUM(f.quantity), 0) FROM formation f WHERE f.app_id = a.id)"
            "  AS wanted"
            " FROM apps a" + (" WHERE a.id = ?" if app else ""),
            (app.id,) if app else (),
        ).fetchall()
        summaries = {}
        for row in rows:
            version, _, has_image = (row["to_run"] or "").partition(":")
            summaries[row["id"]] = DeploySummary(
                current=row["current"], to_run=int(version) if version else None,
                to_run_has_image=has_image == "1", wanted=row["wanted"])
        return summaries

    def release_for_deploy(self, app: App) -> Release | None:
        """The release the app should run: the newest one that has not failed."""
        row = self._conn().execute(
            self._RELEASE_SELECT + " WHERE r.app_id = ? AND r.status != 'failed'"
            " ORDER BY r.version DESC LIMIT 1", (app.id,)
        ).fetchone()
        return self._release(row) if row else None

    def set_release_status(self, release: Release, status: str, reason: str | None = None) -> None:
        assert status in RELEASE_STATES, status
        with self._tx() as c:
            c.execute("UPDATE releases SET status = ?, status_reason = ? WHERE id = ?",
                      (status, reason, release.id))

    def set_release_output(self, release: Release, output: str) -> None:
        """Keep what the release phase printed (`paas releases:output`)."""
        with self._tx() as c:
            c.execute("UPDATE releases SET output = ? WHERE id = ?", (output, release.id))

    def set_app_timeouts(self, app: App, timeouts: dict[str, int | None]) -> App:
        """Set `boot_timeout` and/or `stop_timeout` (None: back to the platform's default)."""
        with self._tx() as c:
            for column, value in timeouts.items():
                if column not in ("boot_timeout", "stop_timeout"):
                    raise ValueError(column)
                c.execute(f"UPDATE apps SET {column} = ? WHERE id = ?", (value, app.id))
        return self.app(app.name)

    def supersede_pending(self, app: App, version: int) -> list[int]:
        """Releases older than `version` still pending never deploy: fail them, naming it.
        Returns their versions."""
        with self._tx() as c:
            versions = [row[0] for row in c.execute(
                "SELECT version FROM releases WHERE app_id = ? AND version < ?"
                " AND status = 'pending' ORDER BY version", (app.id, version))]
            c.execute(
                "UPDATE releases SET status = 'failed', status_reason = ?"
                " WHERE app_id = ? AND version < ? AND status = 'pending'",
                (f"superseded by v{version} before it deployed", app.id, version),
            )
        return versions

    def release_by_id(self, release_id: int) -> Release:
        row = self._conn().execute(
            self._RELEASE_SELECT + " WHERE r.id = ?", (release_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no release with id {release_id}")
        return self._release(row)

    def images_in_use(self, keep_releases: int) -> set[str]:
        """Image ids of each app's last `keep_releases` releases and of its current one."""
        rows = self._conn().execute(
            "SELECT slug FROM (SELECT slug, ROW_NUMBER() OVER"
            " (PARTITION BY app_id ORDER BY version DESC) AS n FROM releases)"
            " WHERE n <= ? AND slug IS NOT NULL"
            " UNION SELECT slug FROM releases r WHERE slug IS NOT NULL AND version ="
            " (SELECT MAX(version) FROM releases WHERE app_id = r.app_id"
            " AND status = 'succeeded')",
            (keep_releases,),
        ).fetchall()
        return {r["slug"] for r in rows if r["slug"].startswith("sha256:")}

    # --- buildpacks -----------------------------------------------------------------
    def buildpacks(self, app: App) -> list[str]:
        rows = self._conn().execute(
            "SELECT url FROM app_buildpacks WHERE app_id = ? ORDER BY position", (app.id,)
        ).fetchall()
        return [r["url"] for r in rows]

    def set_buildpacks(self, app: App, urls: list[str]) -> list[str]:
        with self._tx() as c:
            c.execute("DELETE FROM app_buildpacks WHERE app_id = ?", (app.id,))
            c.executemany(
                "INSERT INTO app_buildpacks (app_id, position, url) VALUES (?, ?, ?)",
                [(app.id, n, url) for n, url in enumerate(urls)],
            )
        return self.buildpacks(app)

    # --- formation ---------------------------------------------------------------
    def formation(self, app: App) -> dict[str, int]:
        rows = self._conn().execute(
            "SELECT type, quantity FROM formation WHERE app_id = ? ORDER BY type", (app.id,)
        ).fetchall()
        return {r["type"]: r["quantity"] for r in rows}

    def set_formation(self, app: App, quantities: dict[str, int]) -> dict[str, int]:
        with self._tx() as c:
            for ptype, quantity in quantities.items():
                c.execute(
                    "INSERT INTO formation (app_id, type, quantity) VALUES (?, ?, ?)"
                    " ON CONFLICT (app_id, type) DO UPDATE SET quantity = excluded.quantity",
                    (app.id, ptype, quantity),
                )
        return self.formation(app)

    def formation_sizes(self, app: App) -> dict[str, str]:
        rows = self._conn().execute(
            "SELECT type, size FROM formation WHERE app_id = ? ORDER BY type", (app.id,)
        ).fetchall()
        return {r["type"]: r["size"] for r in rows}

    def set_formation_sizes(self, app: App, sizes: dict[str, str]) -> dict[str, str]:
        with self._tx() as c:
            for ptype, size in sizes.items():
                c.execute(
                    "INSERT INTO formation (app_id, type, quantity, size) VALUES (?, ?, 0, ?)"
                    " ON CONFLICT (app_id, type) DO UPDATE SET size = excluded.size",
                    (app.id, ptype, size),
                )
        return self.formation_sizes(app)

    def app_by_id(self, app_id: int) -> App:
        row = self._conn().execute(self._APP_SELECT + " WHERE a.id = ?", (app_id,)).fetchone()
        if row is None:
            raise NotFound(f"no app with id {app_id}")
        return self._app(row)
