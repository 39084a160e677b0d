"""The online feature store: the latest feature row per entity key, looked up in milliseconds.

`lakegate materialize` writes a feature table's latest row per key as a *feature view*; the
model server's `predict-by-key` reads it. SQLite under the state folder by default (as Feast's
embedded store), Redis when `online_store.kind: redis` names a URL.

    store = open_online_store("sqlite", path=Path(".lakegate/online_store.db"))
    store.lookup("features", [17, 42])  # -> [{"user_id": 17, "feature_1": ...}, ...]
"""

from __future__ import annotations

from pathlib import Path

from lakegate_errors import UserError
from online_store.errors import (
    BadEntityKey,
    EntityKeysNotFound,
    FeatureViewNotFound,
    OnlineStoreUnavailable,
)
from online_store.store import FeatureView, OnlineStore


def open_online_store(
    kind: str, *, path: Path | None = None, url: str | None = None
) -> OnlineStore:
    """Open the SQLite store at `path` or the Redis store at `url`.

    Raises:
        UserError: the kind is unknown or its location is missing.
        OnlineStoreUnavailable: the store cannot be opened or reached.
    """
    if kind == "sqlite":
        if path is None:
            raise UserError("the SQLite online store needs a path (online_store.path)")
        from online_store.sqlite_store import SqliteOnlineStore

        return SqliteOnlineStore(path)
    if kind == "redis":
        if not url:
            raise UserError(
                "online_store.kind is redis but online_store.url is not set; set it, e.g. "
                "url: redis://127.0.0.1:6379/0"
            )
        from online_store.redis_store import RedisOnlineStore

        return RedisOnlineStore(url)
    raise UserError(f"unknown online store kind {kind!r}; use sqlite or redis")


__all__ = [
    "BadEntityKey",
    "EntityKeysNotFound",
    "FeatureView",
    "FeatureViewNotFound",
    "OnlineStore",
    "OnlineStoreUnavailable",
    "open_online_store",
]
