"""The server's hold on the online store: opened on first use, reopened when it comes back.

A store that cannot be used (the SQLite file removed or replaced by something that is not a
database, Redis stopped) makes `lookup` raise `OnlineStoreUnavailable`, which the server
answers with 503 naming the store and the fix; nothing else depends on it. The next lookup
tries again: a SQLite file written anew (another inode) is reopened, Redis reconnects.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from lakegate_config.settings import Settings
from online_store import OnlineStore, OnlineStoreUnavailable, open_online_store


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


class ServedStore:
    """The configured online store, shared by every request (one open, one lock)."""

    def __init__(self, settings: Settings) -> None:
        self.kind = settings.online_store.kind
        self.url = settings.online_store.url
        self.path = settings.online_store_path
        self._store: OnlineStore | None = None
        self._opened_as: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _missing(self) -> OnlineStoreUnavailable:
        return OnlineStoreUnavailable(
            f"the online store {self.path} is missing or unreadable; write it with `lakegate "
            "materialize TABLE --key KEY --name VIEW`, or set online_store.path in "
            "conf/<env>.yaml"
        )

    def get(self) -> OnlineStore:
        """The open store; a SQLite file that vanished or was replaced is noticed here.

        Raises:
            OnlineStoreUnavailable: the store cannot be opened (a missing SQLite file is not
                created: that would answer "no such view" for a store that is gone).
        """
        with self._lock:  # concurrent first requests share one store
            if self.kind == "sqlite":
                identity = _identity(self.path)
                if identity is None:
                    self._close_locked()
                    raise self._missing()
                if self._store is not None and identity != self._opened_as:
                    self._close_locked()
                self._opened_as = identity
            if self._store is None:
                self._store = open_online_store(self.kind, path=self.path, url=self.url)
            return self._store

    def lookup(self, view: str, keys: list[Any]) -> list[dict[str, Any]]:
        """`OnlineStore.lookup`, with a store that fails mapped to `OnlineStoreUnavailable`."""
        store = self.get()
        try:
            return store.lookup(view, keys)
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise OnlineStoreUnavailable(
                f"the online store {store.location} cannot be read ({exc}); write it again with "
                "`lakegate materialize`, or check online_store in conf/<env>.yaml"
            ) from None

    def _close_locked(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None
        self._opened_as = None

    def close(self) -> None:
        """Close the store; the next lookup opens it again."""
        with self._lock:
            self._close_locked()
