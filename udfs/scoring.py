"""Worker-side scoring: a model is loaded once per Python process, then batches stream through.

Everything here runs inside Spark's Python workers (and in plain pandas for tests). Rows with a
null or NaN feature are not sent to the model: their prediction is null (documented policy).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionDtype

from udfs.errors import ModelUsageError

# Loaded models by local path, one cache per Python worker process: Spark reuses its Python
# workers across tasks, so a model is loaded once per process, never once per batch or per task.
# A long-lived session (serve-sql) ships a new path each time an alias moves: beyond
# `max_loaded_models()` the least recently used model is dropped, so a worker's memory stays flat.
_LOADED_MODELS: OrderedDict[str, Any] = OrderedDict()
_LOAD_COUNTS: dict[str, int] = {}
_LOAD_LOCK = threading.Lock()
MAX_MODELS_VARIABLE = "LAKEGATE_WORKER_MAX_MODELS"
DEFAULT_MAX_LOADED_MODELS = 8

# Nullable pandas dtypes for integer and boolean outputs, so a null prediction stays an integer.
_NULLABLE: dict[str, ExtensionDtype] = {
    "int8": pd.Int8Dtype(),
    "int16": pd.Int16Dtype(),
    "int32": pd.Int32Dtype(),
    "int64": pd.Int64Dtype(),
    "uint8": pd.UInt8Dtype(),
    "uint16": pd.UInt16Dtype(),
    "uint32": pd.UInt32Dtype(),
    "uint64": pd.UInt64Dtype(),
    "bool": pd.BooleanDtype(),
}


def max_loaded_models() -> int:
    """How many models a worker keeps: `LAKEGATE_WORKER_MAX_MODELS` (at least 1), else 8."""
    try:
        return max(1, int(os.environ.get(MAX_MODELS_VARIABLE, DEFAULT_MAX_LOADED_MODELS)))
    except ValueError:
        return DEFAULT_MAX_LOADED_MODELS


def load_model_cached(path: str) -> Any:
    """Return the MLflow pyfunc model stored at `path`, loading it once per process.

    The process keeps the `max_loaded_models()` most recently used models; a task still
    scoring with a dropped one keeps it until it ends.
    """
    with _LOAD_LOCK:
        model = _LOADED_MODELS.get(path)
        if model is not None:
            _LOADED_MODELS.move_to_end(path)
            return model
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(path)
        _LOADED_MODELS[path] = model
        _LOAD_COUNTS[path] = _LOAD_COUNTS.get(path, 0) + 1
        while len(_LOADED_MODELS) > max_loaded_models():
            _LOADED_MODELS.popitem(last=False)
    return model


def model_load_counts() -> dict[str, int]:
    """Return how many times each model path was loaded in this process (diagnostics, tests)."""
    return dict(_LOAD_COUNTS)


def loaded_model_paths() -> list[str]:
    """The paths of the models this process keeps, least recently used first."""
    with _LOAD_LOCK:
        return list(_LOADED_MODELS)


@dataclass(frozen=True)
class ScoringSpec:
    """What a batch scorer needs to know about its model, picklable and model-free.

    Attributes:
        function_name: the SQL function name, for messages.
        input_names: the signature's input columns, in order.
        input_dtypes: the numpy dtype each input is cast to before `predict`.
        output_names: the output columns when the function returns a struct, else None.
        input_types: each input's Spark type name, for the worker's own argument check
            (`udfs.argument_check`); empty skips the type check.

    """

    function_name: str
    input_names: tuple[str, ...]
    input_dtypes: tuple[str, ...]
    output_names: tuple[str, ...] | None = None
    input_types: tuple[str, ...] = ()


def _has_default_index(data: pd.Series | pd.DataFrame) -> bool:
    index = data.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


def bind_arguments(args: Sequence[pd.Series | pd.DataFrame], spec: ScoringSpec) -> pd.DataFrame:
    """Bind UDF arguments to the model's inputs: one struct by field name, else by position.

    Raises:
        ModelUsageError: a struct lacks an input, or the argument count is wrong.

    """
    if len(args) == 1 and isinstance(args[0], pd.DataFrame):
        struct = args[0]
        missing = [name for name in spec.input_names if name not in struct.columns]
        if missing:
            raise ModelUsageError(
                f"{spec.function_name}: the struct argument has no field "
                f"{', '.join(repr(m) for m in missing)} (model inputs: "
                f"{', '.join(spec.input_names)})"
            )
        frame = struct[list(spec.input_names)]
        return frame if _has_default_index(frame) else frame.reset_index(drop=True)
    if len(args) != len(spec.input_names):
        raise ModelUsageError(
            f"{spec.function_name}: called with {len(args)} arguments but the model takes "
            f"{len(spec.input_names)} ({', '.join(spec.input_names)})"
        )
    columns = {}
    for name, arg in zip(spec.input_names, args, strict=True):
        if isinstance(arg, pd.DataFrame):
            raise ModelUsageError(
                f"{spec.function_name}: input {name!r} was given a struct; pass one struct "
                "as the only argument, or plain columns"
            )
        columns[name] = arg if _has_default_index(arg) else arg.reset_index(drop=True)
    return pd.DataFrame(columns, copy=False)


def _as_output(raw: Any, rows: int, spec: ScoringSpec) -> pd.Series | pd.DataFrame:
    """Normalise what `predict` returned into a Series (scalar) or DataFrame (struct)."""
    if spec.output_names is None:
        if isinstance(raw, pd.DataFrame):
            if raw.shape[1] != 1:
                raise ModelUsageError(
                    f"{spec.function_name}: the model returned {raw.shape[1]} columns but its "
                    "signature declares one output"
                )
            raw = raw.iloc[:, 0]
        values = np.asarray(raw)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        return pd.Series(values)
    if isinstance(raw, pd.DataFrame):
        frame = raw.reset_index(drop=True)
    else:
        values = np.asarray(raw)
        frame = pd.DataFrame(values.reshape(rows, -1), columns=list(spec.output_names))
    return frame[list(spec.output_names)]


def _nullable(series: pd.Series) -> pd.Series:
    nullable = _NULLABLE.get(str(series.dtype))
    return series if nullable is None else series.astype(nullable)


def _cast(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Cast to the signature's dtypes, converting only the columns that differ."""
    differing = {name: dtype for name, dtype in dtypes.items() if str(frame[name].dtype) != dtype}
    return frame.astype(differing) if differing else frame


def score_batch(
    model: Any, args: Sequence[pd.Series | pd.DataFrame], spec: ScoringSpec
) -> pd.Series | pd.DataFrame:
    """Score one batch: bind arguments, predict the complete rows, null for the others."""
    frame = bind_arguments(args, spec)
    rows = len(frame)
    dtypes = dict(zip(spec.input_names, spec.input_dtypes, strict=True))
    if not any(frame[name].hasnans for name in spec.input_names):  # the usual, fast case
        return _as_output(model.predict(_cast(frame, dtypes)), rows, spec)
    complete = ~frame.isna().any(axis=1).to_numpy()
    index = np.flatnonzero(complete)
    if not index.size:  # no complete row: every prediction is null
        if spec.output_names is None:
            return pd.Series([None] * rows, dtype=object)
        return pd.DataFrame({name: [None] * rows for name in spec.output_names}, dtype=object)
    scored = _as_output(model.predict(_cast(frame.iloc[index], dtypes)), index.size, spec)
    scored.index = index
    if isinstance(scored, pd.DataFrame):
        return pd.DataFrame(
            {name: _nullable(scored[name]).reindex(range(rows)) for name in scored.columns}
        )
    return _nullable(scored).reindex(range(rows))


class BatchScorer:
    """The body of an iterator pandas UDF: finds the shipped model, loads it once, scores."""

    def __init__(self, spec: ScoringSpec, model_dir_name: str) -> None:
        self.spec = spec
        self.model_dir_name = model_dir_name

    def __call__(
        self, batches: Iterator[pd.Series | pd.DataFrame | tuple[pd.Series, ...]]
    ) -> Iterator[pd.Series | pd.DataFrame]:
        """Score each batch of arguments Spark hands over."""
        from pyspark import SparkFiles

        from udfs.argument_check import check_batch_arguments

        model = load_model_cached(SparkFiles.get(self.model_dir_name))
        for batch in batches:
            args = batch if isinstance(batch, tuple) else (batch,)
            # Calls that bypassed the driver's check (JDBC, plain spark.sql) fail here, first.
            check_batch_arguments(args, self.spec)
            yield score_batch(model, args, self.spec)
