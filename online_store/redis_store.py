"""Feature views in Redis: each write fills a new hash, then one `SET` switches readers to it.

Keys: `lakegate:view:<name>` holds the view's description and the name of its current rows
hash, `lakegate:rows:<name>:<generation>` maps each entity key to its row. Hashes of earlier
or abandoned writes are removed after the switch.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from online_store.errors import FeatureViewNotFound, OnlineStoreUnavailable
from online_store.store import FeatureView, OnlineStore

_PREFIX = "lakegate"


class RedisOnlineStore(OnlineStore):
    """Feature views in a Redis database (`redis://host:port/db`)."""

    def __init__(self, url: str) -> None:
        import redis

        self.location = url
        self._redis_error = redis.RedisError
        try:
            self._client: Any = redis.Redis.from_url(url, decode_responses=True)
            self._client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise OnlineStoreUnavailable(
                f"the Redis online store {url} cannot be reached ({exc}); start redis-server "
                "or fix online_store.url in conf/<env>.yaml"
            ) from None

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._redis_error as exc:
            raise OnlineStoreUnavailable(
                f"the Redis online store {self.location} failed to {what} ({exc})"
            ) from None

    def _description(self, name: str) -> dict[str, Any] | None:
        text = self._call("read a view", self._client.get, f"{_PREFIX}:view:{name}")
        return None if text is None else json.loads(text)

    def view(self, name: str) -> FeatureView:
        """The materialized view `name` (see `OnlineStore.view`)."""
        description = self._description(name)
        if description is None:
            known = ", ".join(view.name for view in self.views()) or "none"
            raise FeatureViewNotFound(
                f"the Redis online store {self.location} has no feature view {name!r} (it has: "
                f"{known}); write it with `lakegate materialize TABLE --key KEY --name {name}`"
            )
        return FeatureView.from_json(description["view"])

    def views(self) -> list[FeatureView]:
        """Every materialized view, by name."""
        keys = self._call("list views", lambda: list(self._client.scan_iter(f"{_PREFIX}:view:*")))
        names = sorted(key.split(":", 2)[2] for key in keys)
        return [self.view(name) for name in names]

    def _fetch(self, view: FeatureView, keys: Sequence[str]) -> list[str | None]:
        description = self._description(view.name)
        if description is None or not keys:
            return [None] * len(keys)
        found: list[str | None] = self._call(
            "read rows", self._client.hmget, description["rows"], list(keys)
        )
        return found

    def _replace(self, view: FeatureView, rows: Iterable[Sequence[tuple[str, str]]]) -> int:
        rows_key = f"{_PREFIX}:rows:{view.name}:{uuid.uuid4().hex}"
        count = 0
        try:
            for batch in rows:
                if batch:
                    self._call(
                        "write rows", lambda b=batch: self._client.hset(rows_key, mapping=dict(b))
                    )
                    count += len(batch)
        except BaseException:
            self._client.unlink(rows_key)
            raise
        stored = dataclasses.replace(view, rows=count)
        description = json.dumps({"view": stored.to_json(), "rows": rows_key})
        self._call("switch the view", self._client.set, f"{_PREFIX}:view:{view.name}", description)
        stale = [
            key
            for key in self._call(
                "list old rows",
                lambda: list(self._client.scan_iter(f"{_PREFIX}:rows:{view.name}:*")),
            )
            if key != rows_key
        ]
        if stale:
            self._call("remove old rows", self._client.unlink, *stale)
        return count

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
