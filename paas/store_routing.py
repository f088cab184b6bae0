"""The store's routing section: custom domains, maintenance, HTTPS redirect, certificates.

A mixin of `paas.store.Store` (its SQL lives here to keep store.py readable); the tables
come from migration 7 in store.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paas.errors import Conflict, NotFound

if TYPE_CHECKING:
    from paas.store import App


@dataclass(frozen=True)
class Domain:
    hostname: str
    created_at: float


@dataclass(frozen=True)
class AppRouting:
    """Everything about reaching one app that users set."""

    app: str
    domains: tuple[str, ...]
    maintenance: bool
    https_redirect: bool


@dataclass(frozen=True)
class StoredCertificate:
    cert_pem: str
    key_pem: str
    created_at: float


class RoutingStore:
    """Domains, maintenance mode, HTTPS redirect and certificates of apps."""

    if TYPE_CHECKING:
        def _conn(self) -> sqlite3.Connection: ...
        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    # --- domains
    def domains(self, app: App) -> list[Domain]:
        rows = self._conn().execute(
            "SELECT hostname, created_at FROM domains WHERE app_id = ? ORDER BY hostname",
            (app.id,),
        ).fetchall()
        return [Domain(r["hostname"], r["created_at"]) for r in rows]

    def add_domain(self, app: App, hostname: str) -> Domain:
        """Give `hostname` (already validated and lowercased) to the app; one app each."""
        with self._tx() as c:
            owner = c.execute(
                "SELECT a.name FROM domains d JOIN apps a ON a.id = d.app_id"
                " WHERE d.hostname = ?", (hostname,),
            ).fetchone()
            if owner is not None:
                where = "this app" if owner["name"] == app.name else "another app"
                raise Conflict(f"{hostname} is already a domain of {where}; "
                               "a domain can belong to one app only")
            now = time.time()
            c.execute("INSERT INTO domains (hostname, app_id, created_at) VALUES (?, ?, ?)",
                      (hostname, app.id, now))
        return Domain(hostname, now)

    def remove_domain(self, app: App, hostname: str) -> None:
        with self._tx() as c:
            cur = c.execute("DELETE FROM domains WHERE app_id = ? AND hostname = ?",
                            (app.id, hostname))
        if cur.rowcount == 0:
            raise NotFound(f"{hostname} is not a domain of {app.name}; `paas domains` lists them")

    # --- maintenance and redirect
    def app_routing(self, app: App) -> AppRouting:
        row = self._conn().execute(
            "SELECT maintenance, https_redirect FROM app_routing WHERE app_id = ?", (app.id,)
        ).fetchone()
        return AppRouting(
            app.name, tuple(d.hostname for d in self.domains(app)),
            bool(row and row["maintenance"]), bool(row and row["https_redirect"]),
        )

    def set_app_routing(
        self, app: App, *, maintenance: bool | None = None, https_redirect: bool | None = None
    ) -> AppRouting:
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO app_routing (app_id) VALUES (?)", (app.id,))
            if maintenance is not None:
                c.execute("UPDATE app_routing SET maintenance = ? WHERE app_id = ?",
                          (int(maintenance), app.id))
            if https_redirect is not None:
                c.execute("UPDATE app_routing SET https_redirect = ? WHERE app_id = ?",
                          (int(https_redirect), app.id))
        return self.app_routing(app)

    def all_app_routing(self) -> Iterator[AppRouting]:
        """Every app's routing, for rebuilding Redis's copy."""
        conn = self._conn()
        domains: dict[int, list[str]] = {}
        for row in conn.execute("SELECT app_id, hostname FROM domains ORDER BY hostname"):
            domains.setdefault(row["app_id"], []).append(row["hostname"])
        for row in conn.execute(
            "SELECT a.id, a.name, r.maintenance, r.https_redirect FROM apps a"
            " LEFT JOIN app_routing r ON r.app_id = a.id ORDER BY a.name"
        ).fetchall():
            yield AppRouting(row["name"], tuple(domains.get(row["id"], ())),
                             bool(row["maintenance"]), bool(row["https_redirect"]))

    # --- certificates
    def certificate(self, app: App) -> StoredCertificate | None:
        row = self._conn().execute(
            "SELECT cert_pem, key_pem, created_at FROM certificates WHERE app_id = ?", (app.id,)
        ).fetchone()
        if row is None:
            return None
        return StoredCertificate(row["cert_pem"], row["key_pem"], row["created_at"])

    def set_certificate(self, app: App, cert_pem: str, key_pem: str) -> StoredCertificate:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "INSERT INTO certificates (app_id, cert_pem, key_pem, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (app_id) DO UPDATE SET"
                " cert_pem = excluded.cert_pem, key_pem = excluded.key_pem,"
                " created_at = excluded.created_at",
                (app.id, cert_pem, key_pem, now),
            )
        return StoredCertificate(cert_pem, key_pem, now)

    def delete_certificate(self, app: App) -> None:
        with self._tx() as c:
            cur = c.execute("DELETE FROM certificates WHERE app_id = ?", (app.id,))
        if cur.rowcount == 0:
            raise NotFound(f"{app.name} has no certificate")

    def all_certificates(self) -> dict[str, StoredCertificate]:
        rows = self._conn().execute(
            "SELECT a.name, c.cert_pem, c.key_pem, c.created_at FROM certificates c"
            " JOIN apps a ON a.id = c.app_id"
        ).fetchall()
        return {r["name"]: StoredCertificate(r["cert_pem"], r["key_pem"], r["created_at"])
                for r in rows}
