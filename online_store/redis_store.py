"""Feature views in Redis: each write fills a new hash, then one `SET` switches readers to it.

Keys: `lakegate:view:<name>` holds the view's description and the name of its current rows
hash, `lakegate:rows:<name>:<generation>` maps each entity key to its row. A lookup reads the
pointer once and the rows of that hash. A hash being written expires unless its write finishes
(`WRITING_ROWS_TTL_SECONDS`); the switch makes it permanent and sets the pointer in one
transaction, and the hash it replaced expires after `REPLACED_ROWS_GRACE_SECONDS`, so lookups
that resolved the old pointer still read it whole. A write never removes a hash that another
write made current: concurrent materializations each leave a whole generation, the last
switch wins.
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
# How long a replaced rows hash stays readable for lookups that resolved the view before.
REPLACED_ROWS_GRACE_SECONDS = 60
# A rows hash being written expires unless its write finishes (a killed materialize).
WRITING_ROWS_TTL_SECONDS = 3600


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
        text = self._call("read a view", self._client.get, _view_key(name))
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
        stored = FeatureView.from_json(description["view"])
        return dataclasses.replace(stored, generation=description["rows"])

    def views(self) -> list[FeatureView]:
        """Every materialized view, by name."""
        keys = self._call("list views", lambda: list(self._client.scan_iter(f"{_PREFIX}:view:*")))
        names = sorted(key.split(":", 2)[2] for key in keys)
        return [self.view(name) for name in names]

    def _fetch(self, view: FeatureView, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        generation = view.generation or self.view(view.name).generation
        found: list[str | None] = self._call(
            "read rows", self._client.hmget, generation, list(keys)
        )
        return found

    def _replace(self, view: FeatureView, rows: Iterable[Sequence[tuple[str, str]]]) -> int:
        rows_key = f"{_PREFIX}:rows:{view.name}:{uuid.uuid4().hex}"
        count = 0
        try:
            for batch in rows:
                if batch:
                    writing = self._client.pipeline(transaction=True)
                    writing.hset(rows_key, mapping=dict(batch))
                    writing.expire(rows_key, WRITING_ROWS_TTL_SECONDS)
                    self._call("write rows", writing.execute)
                    count += len(batch)
        except BaseException:
            self._client.unlink(rows_key)
            raise
        stored = dataclasses.replace(view, rows=count)
        description = json.dumps({"view": stored.to_json(), "rows": rows_key})
        switch = self._client.pipeline(transaction=True)
        switch.persist(rows_key)
        switch.set(_view_key(view.name), description, get=True)
        _, replaced = self._call("switch the view", switch.execute)
        self._retire(view.name, replaced)
        return count

    def _retire(self, name: str, replaced: str | None) -> None:
        """Let the rows hash this write replaced expire, and leftovers no write will replace.

        A leftover is a permanent hash that is not current (left by an older lakegate). A hash
        is permanent only from its switch on, so reading the pointer after its TTL tells a
        leftover from the hash a concurrent write has just made current.
        """
        old = [json.loads(replaced)["rows"]] if replaced else []
        pattern = f"{_PREFIX}:rows:{name}:*"
        for key in self._call("list rows", lambda: list(self._client.scan_iter(pattern))):
            if key not in old and self._call("read a TTL", self._client.ttl, key) == -1:
                current = self._description(name)
                if current is None or current["rows"] != key:
                    old.append(key)
        for key in old:
            self._call("retire old rows", self._client.expire, key, REPLACED_ROWS_GRACE_SECONDS)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _view_key(name: str) -> str:
    return f"{_PREFIX}:view:{name}"
