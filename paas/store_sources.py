"""The store's part for builds made from a source tarball: where each one's source is.

A mixin that `paas.store.Store` inherits (SQL stays behind the one store object).
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

SOURCES_MIGRATION = """
    ALTER TABLE builds ADD COLUMN source_url TEXT;
"""


class SourcesMixin:
    if TYPE_CHECKING:
        def _conn(self) -> sqlite3.Connection: ...
        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def set_build_source(self, build_id: int, source_url: str) -> None:
        """The tarball a build takes its source from: an http(s) URL, or `upload:` for
        one the API kept on disk (paas.build.source_blob.upload_path)."""
        with self._tx() as c:
            c.execute("UPDATE builds SET source_url = ? WHERE id = ?", (source_url, build_id))

    def build_source(self, build_id: int) -> str | None:
        """The build's source tarball; None for a build of a pushed git commit."""
        row = self._conn().execute(
            "SELECT source_url FROM builds WHERE id = ?", (build_id,)
        ).fetchone()
        return row["source_url"] if row else None
