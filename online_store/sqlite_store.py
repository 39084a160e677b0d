"""The embedded online store: one SQLite file (Feast's default), WAL mode, a view per write.

Readers use one connection per thread; a write replaces a view's rows in one transaction, so
a lookup running meanwhile sees the old rows until it commits.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from online_store.errors import FeatureViewNotFound, OnlineStoreUnavailable
from online_store.store import FeatureView, OnlineStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lakegate_feature_views (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lakegate_feature_rows (
    view TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (view, entity_key)
) WITHOUT ROWID;
"""
# SQLite's default limit on host parameters is 999 in old builds; stay below it.
_KEYS_PER_QUERY = 500


class SqliteOnlineStore(OnlineStore):
    """Feature views in a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = f"sqlite:{self.path}"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connection()
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OnlineStoreUnavailable(
                f"the online store {self.path} cannot be opened ({exc}); check that the folder "
                "is writable or set online_store.path in conf/<env>.yaml"
            ) from None

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def view(self, name: str) -> FeatureView:
        """The materialized view `name` (see `OnlineStore.view`)."""
        row = (
            self._connection()
            .execute("SELECT description FROM lakegate_feature_views WHERE name = ?", (name,))
            .fetchone()
        )
        if row is None:
            known = ", ".join(view.name for view in self.views()) or "none"
            raise FeatureViewNotFound(
                f"the online store {self.path} has no feature view {name!r} (it has: {known}); "
                f"write it with `lakegate materialize TABLE --key KEY --name {name}`"
            )
        return FeatureView.from_json(row[0])

    def views(self) -> list[FeatureView]:
        """Every materialized view, by name."""
        rows = self._connection().execute(
            "SELECT description FROM lakegate_feature_views ORDER BY name"
        )
        return [FeatureView.from_json(text) for (text,) in rows]

    def _fetch(self, view: FeatureView, keys: Sequence[str]) -> list[str | None]:
        found: dict[str, str] = {}
        connection = self._connection()
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = list(dict.fromkeys(keys[start : start + _KEYS_PER_QUERY]))
            marks = ",".join("?" * len(chunk))
            found.update(
                connection.execute(
                    "SELECT entity_key, payload FROM lakegate_feature_rows "
                    f"WHERE view = ? AND entity_key IN ({marks})",
                    (view.name, *chunk),
                )
            )
        return [found.get(key) for key in keys]

    def _replace(self, view: FeatureView, rows: Iterable[Sequence[tuple[str, str]]]) -> int:
        connection = self._connection()
        count = 0
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("DELETE FROM lakegate_feature_rows WHERE view = ?", (view.name,))
            for batch in rows:
                connection.executemany(
                    "INSERT OR REPLACE INTO lakegate_feature_rows (view, entity_key, payload) "
                    "VALUES (?, ?, ?)",
                    [(view.name, key, payload) for key, payload in batch],
                )
                count += len(batch)
            stored = dataclasses.replace(view, rows=count)
            connection.execute(
                "INSERT OR REPLACE INTO lakegate_feature_views (name, description) VALUES (?, ?)",
                (view.name, stored.to_json()),
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return count

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()
