"""MLflow's scoring payloads in, `{"predictions": [...]}` out, as `mlflow models serve` does.

Accepted bodies: `{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`,
`{"dataframe_records": [{...}, ...]}`, and `{"inputs": ...}` (or `instances`) holding records,
a column mapping `{"f": [1, 2]}` or one record `{"f": 1}`. Values are kept as JSON gave them
(no silent conversion): the signature check then judges their types.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from model_server.errors import BadPayload

PAYLOAD_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")


def _records_frame(records: list[Any], input_names: Sequence[str], where: str) -> pd.DataFrame:
    for position, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise BadPayload(
                f"{where}: record {position} is {type(record).__name__}, not an object of "
                "feature: value"
            )
        missing = [name for name in input_names if name not in record]
        if missing:
            raise BadPayload(
                f"{where}: record {position} has no feature {', '.join(map(repr, missing))} "
                f"(the model's inputs: {', '.join(input_names)})"
            )
    # No records: no rows, but the inputs' columns, so the answer is no predictions.
    return (
        pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=list(input_names))
    )


def _inputs_frame(value: Any, input_names: Sequence[str], where: str) -> pd.DataFrame:
    if isinstance(value, list):
        return _records_frame(value, input_names, where)
    if isinstance(value, dict):
        if value and all(isinstance(v, list) for v in value.values()):
            lengths = {len(v) for v in value.values()}
            if len(lengths) > 1:
                raise BadPayload(f"{where}: the feature lists have different lengths {lengths}")
            return pd.DataFrame(value)
        if any(isinstance(v, list | dict) for v in value.values()):
            raise BadPayload(f"{where}: give every feature a list of values, or one value each")
        return pd.DataFrame([value])
    raise BadPayload(f"{where} must be a list of records or an object of feature columns")


def frame_from_payload(body: Any, input_names: Sequence[str]) -> pd.DataFrame:
    """The rows of an MLflow scoring payload as a DataFrame.

    Raises:
        BadPayload: not exactly one known format, or a malformed one; the message says which.
    """
    if not isinstance(body, dict):
        raise BadPayload(f"the body must be a JSON object with one of {', '.join(PAYLOAD_FORMATS)}")
    formats = [key for key in PAYLOAD_FORMATS if key in body]
    if len(formats) != 1:
        raise BadPayload(
            f"the body must hold exactly one of {', '.join(PAYLOAD_FORMATS)}; it holds "
            f"{', '.join(map(str, body)) or 'nothing'}"
        )
    where = formats[0]
    value = body[where]
    if where == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise BadPayload('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        columns = value.get("columns")
        rows = value["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadPayload("dataframe_split.columns must be a list of feature names")
        for position, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadPayload(
                    f"dataframe_split.data row {position} must be a list of {len(columns)} "
                    f"values ({', '.join(columns)})"
                )
        return pd.DataFrame(rows, columns=columns)
    if where == "dataframe_records":
        if not isinstance(value, list):
            raise BadPayload("dataframe_records must be a list of {feature: value} records")
        return _records_frame(value, input_names, where)
    return _inputs_frame(value, input_names, where)


def _plain(value: Any) -> Any:
    """A prediction as JSON can hold it: Python scalars, None for null or NaN."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def predictions_to_json(scored: pd.Series | pd.DataFrame) -> list[Any]:
    """Predictions as a list: values for one output, `{output: value}` records for several."""
    if isinstance(scored, pd.DataFrame):
        columns = list(scored.columns)
        return [
            {name: _plain(v) for name, v in zip(columns, row, strict=True)}
            for row in scored.itertuples(index=False, name=None)
        ]
    return [_plain(value) for value in scored.tolist()]
