"""The online store's contract: feature views written whole, rows looked up by entity key.

A feature view is what `lakegate materialize` writes: the latest row per entity key of a
feature table, its columns and Spark types, and the key columns. Writing a view replaces it
whole: readers see the old rows or the new ones, never a mix (SQLite: one transaction; Redis:
a new hash switched in by one `SET`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from online_store.encoding import canonical_key, coerce_key, decode_row, encode_row
from online_store.errors import BadEntityKey, EntityKeysNotFound

_VIEW_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class FeatureView:
    """A materialized feature view.

    Attributes:
        name: the view's name (`features`).
        key_columns: the entity key columns, in order.
        columns: every column (keys included) with its Spark SQL type name, in table order.
        rows: how many entity rows were written.
        materialized_at: when the write finished (UTC, ISO 8601).
        source: where the rows came from (a path or table name).
        generation: which stored rows this description belongs to (Redis: the rows hash), so
            a lookup reads the rows of the generation it resolved; not part of the description.
    """

    name: str
    key_columns: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    rows: int = 0
    materialized_at: str = ""
    source: str = ""
    generation: str = dataclasses.field(default="", compare=False, repr=False)

    @property
    def key_types(self) -> tuple[tuple[str, str], ...]:
        """The key columns with their types."""
        types = dict(self.columns)
        return tuple((name, types[name]) for name in self.key_columns)

    @property
    def key_positions(self) -> tuple[int, ...]:
        """Where each key column sits in a row."""
        names = [name for name, _ in self.columns]
        return tuple(names.index(name) for name in self.key_columns)

    def to_json(self) -> str:
        """The view's description as JSON (stored beside its rows)."""
        return json.dumps(
            {
                "name": self.name,
                "key_columns": list(self.key_columns),
                "columns": [list(c) for c in self.columns],
                "rows": self.rows,
                "materialized_at": self.materialized_at,
                "source": self.source,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureView:
        """Read a view's description written by `to_json`."""
        data = json.loads(text)
        return cls(
            name=data["name"],
            key_columns=tuple(data["key_columns"]),
            columns=tuple((name, type_name) for name, type_name in data["columns"]),
            rows=int(data.get("rows", 0)),
            materialized_at=data.get("materialized_at", ""),
            source=data.get("source", ""),
        )


def check_view_definition(
    name: str, key_columns: Sequence[str], columns: Sequence[tuple[str, str]]
) -> None:
    """Refuse a view name or key that cannot be stored.

    Raises:
        BadEntityKey: the name has odd characters or a key column is not a column.
    """
    if not _VIEW_NAME.match(name):
        raise BadEntityKey(
            f"feature view name {name!r} may hold letters, digits, '_', '.', '-' only"
        )
    names = [column for column, _ in columns]
    missing = [key for key in key_columns if key not in names]
    if not key_columns or missing:
        raise BadEntityKey(
            f"feature view {name!r}: key column {', '.join(map(repr, missing)) or '(none)'} "
            f"is not a column of the table ({', '.join(names)})"
        )


class OnlineStore(ABC):
    """Feature views by name; subclasses store the encoded rows (SQLite, Redis)."""

    location: str = ""

    @abstractmethod
    def view(self, name: str) -> FeatureView:
        """The materialized view `name`.

        Raises:
            FeatureViewNotFound: nothing was materialized under that name.
        """

    @abstractmethod
    def views(self) -> list[FeatureView]:
        """Every materialized view."""

    @abstractmethod
    def _fetch(self, view: FeatureView, keys: Sequence[str]) -> list[str | None]:
        """The stored payload of each canonical key in `view`'s generation (None where missing)."""

    @abstractmethod
    def _replace(self, view: FeatureView, rows: Iterable[Sequence[tuple[str, str]]]) -> int:
        """Replace the view's rows with batches of `(canonical key, payload)`; return the count."""

    def close(self) -> None:  # noqa: B027  (stores without connections have nothing to close)
        """Release connections."""

    def write_view(
        self,
        name: str,
        key_columns: Sequence[str],
        columns: Sequence[tuple[str, str]],
        batches: Iterable[Sequence[Sequence[Any]]],
        *,
        source: str = "",
    ) -> FeatureView:
        """Replace feature view `name` with the rows of `batches` (each row in column order).

        Rows should have unique keys (`lakegate materialize` keeps the latest per key); when a
        key repeats, the last row written wins.

        Returns:
            The view as stored, with its row count.
        """
        check_view_definition(name, key_columns, columns)
        view = FeatureView(
            name, tuple(key_columns), tuple((n, t) for n, t in columns), source=source
        )
        positions = view.key_positions

        def encoded() -> Iterable[list[tuple[str, str]]]:
            for batch in batches:
                yield [
                    (canonical_key([row[p] for p in positions]), encode_row(row)) for row in batch
                ]

        finished = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        view = dataclasses.replace(view, materialized_at=finished)
        return dataclasses.replace(view, rows=self._replace(view, encoded()))

    def lookup(self, name: str, keys: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of `keys` in view `name`, in the order asked, as `{column: value}`.

        A key is a value (one key column), a list in key-column order, or `{column: value}`;
        values are coerced to the key column's type (`"7"` finds user 7 of a bigint key).

        Raises:
            FeatureViewNotFound: no such view.
            BadEntityKey: a key does not fit the key columns.
            EntityKeysNotFound: some keys have no row; it lists them.
        """
        view = self.view(name)
        typed = [coerce_key(key, view.key_types) for key in keys]
        payloads = self._fetch(view, [canonical_key(key) for key in typed])
        missing = [
            key[0] if len(key) == 1 else key
            for key, payload in zip(typed, payloads, strict=True)
            if payload is None
        ]
        if missing:
            raise EntityKeysNotFound(name, missing)
        return [decode_row(payload, view.columns) for payload in payloads]  # type: ignore[arg-type]
