"""Feature rows as compact JSON: values in column order, typed back by the view's schema.

Column types are Spark SQL's simple names (`bigint`, `double`, `string`, `boolean`, `date`,
`timestamp`, `decimal(10,2)`, `binary`...), so a row read back equals the offline row: floats
round-trip exactly through JSON (shortest repr, NaN included), decimals travel as strings,
dates as ISO text, binary as base64.

Timestamps are stored as UTC instants (`2026-12-06T08:00:00+00:00`) and read back as aware UTC
datetimes, so a lookup names the same instant as the offline row whatever `TZ` the writer or the
reader runs in. A naive datetime being written is taken as Spark's `collect()` gives it: local
time of this process. A naive timestamp given as a lookup key is taken as UTC.
`timestamp_ntz` values (wall-clock times without a zone) come back naive, the same wall clock
when written and read under the same `TZ`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from online_store.errors import BadEntityKey

INTEGRAL_TYPES = frozenset(
    {"tinyint", "smallint", "int", "bigint", "byte", "short", "integer", "long"}
)
FRACTIONAL_TYPES = frozenset({"float", "double"})


def _base_type(type_name: str) -> str:
    return type_name.split("(", 1)[0].strip().lower()


def _utc_instant(value: Any) -> dt.datetime:
    """A stored or requested timestamp as an aware UTC datetime (naive text is UTC)."""
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _wall_clock(value: Any) -> dt.datetime:
    """A stored `timestamp_ntz` as the naive local datetime Spark gives for it."""
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed
    return parsed.astimezone().replace(tzinfo=None)


def encode_value(value: Any) -> Any:
    """A value as JSON can hold it (the view's schema says how to read it back)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "item"):  # numpy scalars
        return encode_value(value.item())
    raise TypeError(f"the online store cannot hold a value of type {type(value).__name__}")


def decode_value(value: Any, type_name: str) -> Any:
    """Read a stored value back as the Python value Spark gives for `type_name`."""
    if value is None:
        return None
    base = _base_type(type_name)
    if base in FRACTIONAL_TYPES:
        return float(value)
    if base in INTEGRAL_TYPES:
        return int(value)
    if base == "decimal":
        return Decimal(value)
    if base == "timestamp":
        return _utc_instant(value)
    if base == "timestamp_ntz":
        return _wall_clock(value)
    if base == "date":
        return dt.date.fromisoformat(value)
    if base == "binary":
        return bytearray(base64.b64decode(value))
    return value


def encode_row(values: Sequence[Any]) -> str:
    """One row's values, in column order, as compact JSON."""
    return json.dumps([encode_value(v) for v in values], separators=(",", ":"))


def decode_row(payload: str, columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A stored row as `{column: value}` with the view's types."""
    values = json.loads(payload)
    return {
        name: decode_value(value, type_name)
        for (name, type_name), value in zip(columns, values, strict=True)
    }


def canonical_key(values: Sequence[Any]) -> str:
    """The stored form of an entity key (typed values, in key-column order)."""
    return json.dumps([encode_value(v) for v in values], separators=(",", ":"))


def _coerce_key_value(value: Any, column: str, type_name: str) -> Any:
    """A requested key value as the key column's type, or a `BadEntityKey` naming the column."""
    base = _base_type(type_name)
    if value is None:
        raise BadEntityKey(f"key column {column!r} was given null; keys are never null")
    if base in INTEGRAL_TYPES:
        if isinstance(value, bool):
            raise BadEntityKey(f"key column {column!r} is {type_name} but was given {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise BadEntityKey(f"key column {column!r} is {type_name} but was given {value!r}")
    if base in FRACTIONAL_TYPES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise BadEntityKey(f"key column {column!r} is {type_name} but was given {value!r}")
    if base == "string":
        if isinstance(value, str):
            return value
        raise BadEntityKey(f"key column {column!r} is a string but was given {value!r}")
    try:
        return decode_value(value, type_name)
    except (TypeError, ValueError) as exc:
        raise BadEntityKey(
            f"key column {column!r} is {type_name} but was given {value!r} ({exc})"
        ) from None


def coerce_key(key: Any, key_columns: Sequence[tuple[str, str]]) -> tuple[Any, ...]:
    """A requested key (a scalar, a list in key order, or `{column: value}`) as typed values.

    Raises:
        BadEntityKey: the key has the wrong columns, count or types; the message names them.
    """
    names = [name for name, _ in key_columns]
    if isinstance(key, Mapping):
        missing = [name for name in names if name not in key]
        extra = [name for name in key if name not in names]
        if missing or extra:
            raise BadEntityKey(
                f"key {dict(key)!r} does not match the key columns {', '.join(names)}"
                + (f" (missing {', '.join(missing)})" if missing else "")
                + (f" (unknown {', '.join(map(str, extra))})" if extra else "")
            )
        raw = [key[name] for name in names]
    elif isinstance(key, list | tuple):
        if len(key) != len(names):
            raise BadEntityKey(
                f"key {list(key)!r} has {len(key)} values but the key columns are "
                f"{', '.join(names)}"
            )
        raw = list(key)
    else:
        if len(names) != 1:
            raise BadEntityKey(
                f"key {key!r} is one value but the key columns are {', '.join(names)}; "
                "send {column: value, ...}"
            )
        raw = [key]
    return tuple(
        _coerce_key_value(value, name, type_name)
        for value, (name, type_name) in zip(raw, key_columns, strict=True)
    )
