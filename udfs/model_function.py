"""An MLflow model as a Spark SQL function: resolve, download once, ship, register.

`register_pandas_udf(spark, "predict_users", "models:/users@champion")` downloads the model's
artifacts on the driver once, ships them to the executors with `addArchive`, and registers an
iterator pandas UDF whose return type follows the model's signature. Each Python worker loads
the model once per process (see `udfs.scoring`). `udfs.register_model_function` starts there
and then prefers a compiled expression (`udfs.compiled.model_registration`).
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udfs.errors import ModelStoreUnavailable, ModelUsageError
from udfs.scoring import BatchScorer, ScoringSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlflow.models.signature import ModelSignature
    from pyspark.sql import Column, SparkSession
    from pyspark.sql._typing import UserDefinedFunctionLike
    from pyspark.sql.types import DataType

_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGISTERED_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")

# Functions registered in this process, by lower-case SQL name (SQL names ignore case).
_REGISTERED: dict[str, ModelFunction] = {}


@dataclass(frozen=True)
class ModelInput:
    """One input of a model's signature.

    Attributes:
        name: the column name the model was trained on.
        spark_type: Spark's name for its type (`double`, `long`, `string`...).
        numpy_dtype: the dtype the worker casts the argument to before `predict`.

    """

    name: str
    spark_type: str
    numpy_dtype: str


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model URI points: its artifacts, and the registry version when there is one."""

    model_uri: str
    artifact_uri: str
    model_name: str | None = None
    model_version: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class ModelFunction:
    """A model registered as a Spark SQL function; also callable on DataFrame columns."""

    name: str
    model: ResolvedModel
    local_path: str
    inputs: tuple[ModelInput, ...]
    return_type: DataType
    udf: Callable[..., Column]  # the registered pandas UDF, or the compiled path's call
    # How calls are scored: "compiled" (a native Spark expression, see udfs.compiled) or "udf".
    path: str = "udf"
    fallback_reason: str | None = None
    compiled_sql: str | None = None
    verified_rows: int = 0

    @property
    def input_names(self) -> tuple[str, ...]:
        """The signature's input columns, in order."""
        return tuple(item.name for item in self.inputs)

    @property
    def description(self) -> str:
        """A short human name: `predict_users (users version 3)`."""
        if self.model.model_name:
            return f"{self.name} ({self.model.model_name} version {self.model.model_version})"
        return f"{self.name} ({self.model.model_uri})"

    def __call__(self, *columns: Column | str) -> Column:
        """Apply the model to columns (by signature order) or to one struct (by field name)."""
        return self.udf(*columns)


def registered_functions() -> dict[str, ModelFunction]:
    """Return the model functions registered in this process, by lower-case SQL name."""
    return dict(_REGISTERED)


def resolve_model(
    model_uri: str, *, tracking_uri: str | None = None, registry_uri: str | None = None
) -> ResolvedModel:
    """Resolve `models:/name@alias` or `models:/name/version` to a version and its artifacts.

    Other URIs (`runs:/...`, paths, `models:/m-<id>`) are passed to MLflow unchanged.

    Raises:
        ModelUsageError: the model, alias or version does not exist.
        ModelStoreUnavailable: the registry cannot be reached.

    """
    match = _REGISTERED_URI.match(model_uri)
    if match is None:
        return ResolvedModel(model_uri=model_uri, artifact_uri=model_uri)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, version = match["name"], match["alias"], match["version"]
    where = registry_uri or tracking_uri or "the default MLflow registry"
    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelUsageError(
                f"model {model_uri}: no registered model named {name!r} in {where}"
            ) from None
        raise ModelStoreUnavailable(
            f"model {model_uri}: the registry {where} failed: {exc}"
        ) from None
    except Exception as exc:
        raise ModelStoreUnavailable(
            f"model {model_uri}: cannot reach the MLflow registry {where} ({exc})"
        ) from None
    if alias is not None:
        aliases = dict(registered.aliases or {})
        if alias not in aliases:
            known = ", ".join(sorted(aliases)) or "none"
            raise ModelUsageError(
                f"model {model_uri}: model {name!r} has no alias {alias!r} (its aliases: {known})"
            )
        version = str(aliases[alias])
    elif version == "latest":
        versions = client.search_model_versions(f"name='{name}'")
        if not versions:
            raise ModelUsageError(f"model {model_uri}: model {name!r} has no versions")
        version = str(max(int(v.version) for v in versions))
    try:
        model_version = client.get_model_version(name, version)
        artifact_uri = client.get_model_version_download_uri(name, version)
    except MlflowException:
        raise ModelUsageError(
            f"model {model_uri}: model {name!r} has no version {version}"
        ) from None
    return ResolvedModel(
        model_uri=model_uri,
        artifact_uri=artifact_uri,
        model_name=name,
        model_version=str(version),
        run_id=model_version.run_id,
    )


def download_model(
    resolved: ResolvedModel, *, tracking_uri: str | None = None
) -> tuple[Path, Path]:
    """Download a model's artifacts into a fresh local folder, once, on the driver.

    Returns:
        The fresh folder (what is shipped to executors) and the model folder inside it.

    Raises:
        ModelStoreUnavailable: the artifacts cannot be downloaded.
        ModelUsageError: the artifacts hold no MLflow model.

    """
    import mlflow.artifacts

    label = resolved.model_name or "model"
    folder = Path(tempfile.mkdtemp(prefix="lakegate-models-")) / (
        f"{label}-{resolved.model_version or 'x'}-{uuid.uuid4().hex[:8]}"
    )
    folder.mkdir()
    # Executors work on their own copy (addArchive); the driver's copy goes when the process ends.
    atexit.register(shutil.rmtree, folder.parent, ignore_errors=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=resolved.artifact_uri, dst_path=str(folder), tracking_uri=tracking_uri
        )
    except Exception as exc:
        raise ModelStoreUnavailable(
            f"model {resolved.model_uri}: its artifacts cannot be downloaded from "
            f"{resolved.artifact_uri} ({exc})"
        ) from None
    local_path = Path(local)
    if not (local_path / "MLmodel").is_file():
        raise ModelUsageError(
            f"model {resolved.model_uri}: {resolved.artifact_uri} holds no MLflow model "
            "(no MLmodel file)"
        )
    return folder, local_path


def signature_inputs(signature: ModelSignature, function_name: str) -> tuple[ModelInput, ...]:
    """Read the named, typed column inputs of a signature.

    Raises:
        ModelUsageError: the inputs are tensors, unnamed, or of a type SQL cannot pass.

    """
    from mlflow.types import DataType as MlflowType

    if signature.inputs is None or signature.inputs.is_tensor_spec():
        raise ModelUsageError(
            f"{function_name}: the model's signature has no named column inputs; log it with "
            "signature=infer_signature(features_frame, predictions)"
        )
    inputs = []
    for position, spec in enumerate(signature.inputs.inputs, start=1):
        if spec.name is None:
            raise ModelUsageError(f"{function_name}: input {position} of the model has no name")
        if not isinstance(spec.type, MlflowType):
            raise ModelUsageError(
                f"{function_name}: input {spec.name!r} has type {spec.type}, which SQL "
                "arguments cannot pass; only scalar column types are supported"
            )
        numpy_dtype = spec.type.to_numpy()
        dtype_name = "object" if numpy_dtype.kind in "USO" else str(numpy_dtype)
        inputs.append(ModelInput(spec.name, spec.type.to_spark().typeName(), dtype_name))
    return tuple(inputs)


def _numpy_to_spark(dtype: Any) -> DataType:
    import numpy as np
    from pyspark.sql import types as T

    dtype = np.dtype(dtype)
    mapping = {
        "f8": T.DoubleType(),
        "f4": T.FloatType(),
        "i8": T.LongType(),
        "i4": T.IntegerType(),
        "i2": T.ShortType(),
        "i1": T.ByteType(),
        "b1": T.BooleanType(),
    }
    key = f"{dtype.kind}{dtype.itemsize}"
    if key in mapping:
        return mapping[key]
    if dtype.kind in "USO":
        return T.StringType()
    raise ModelUsageError(f"model output dtype {dtype} has no Spark SQL type")


def signature_return_type(
    signature: ModelSignature, function_name: str
) -> tuple[DataType, tuple[str, ...] | None]:
    """Return the Spark type of the model's output: a number, or a struct for several outputs.

    Returns:
        The Spark type, and the output names when it is a struct (else None).

    """
    from mlflow.types import DataType as MlflowType
    from pyspark.sql import types as T

    outputs = signature.outputs
    if outputs is None:
        return T.DoubleType(), None
    if outputs.is_tensor_spec():
        specs = outputs.inputs
        if (
            len(specs) == 1
            and len(specs[0].shape) <= 2
            and (len(specs[0].shape) == 1 or specs[0].shape[1] == 1)
        ):
            return _numpy_to_spark(specs[0].type), None
        raise ModelUsageError(
            f"{function_name}: the model's output tensors {outputs} have no scalar SQL type"
        )
    specs = outputs.inputs
    for spec in specs:
        if not isinstance(spec.type, MlflowType):
            raise ModelUsageError(f"{function_name}: model output type {spec.type} not supported")
    if len(specs) == 1:
        return specs[0].type.to_spark(), None
    names = tuple(spec.name or f"output_{i}" for i, spec in enumerate(specs))
    fields = [T.StructField(n, s.type.to_spark(), True) for n, s in zip(names, specs, strict=True)]
    return T.StructType(fields), names


def _iterator_pandas_udf(scorer: BatchScorer, return_type: DataType) -> UserDefinedFunctionLike:
    from pyspark.rdd import PythonEvalType  # Spark 3.5's home for it
    from pyspark.sql.pandas.functions import pandas_udf

    with warnings.catch_warnings():  # the eval type is given explicitly: arity varies per call
        warnings.simplefilter("ignore", UserWarning)
        # pyspark's stubs type an iterator UDF as Iterable -> Iterable[Series] with an atomic
        # return type; a struct return type (DataFrame batches) is valid and has no overload.
        udf: UserDefinedFunctionLike = pandas_udf(  # type: ignore[call-overload]
            scorer, return_type, PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF
        )
    return udf


def register_pandas_udf(
    spark: SparkSession,
    name: str,
    model_uri: str,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> tuple[ModelFunction, ScoringSpec]:
    """Register an MLflow model as the pandas UDF `name` in `spark`: the path every model has.

    `udfs.compiled.model_registration.register_model_function` (`udfs.register_model_function`)
    calls this first, then puts the compiled expression or the checked call in the UDF's place.

    Returns:
        The function (its `udf` the registered pandas UDF) and the UDF's scoring spec.

    Raises:
        ModelUsageError: unknown model, alias or version; unusable signature or name.
        ModelStoreUnavailable: the registry or the artifacts cannot be reached.

    """
    from mlflow.models import Model

    if not _FUNCTION_NAME.match(name):
        raise ModelUsageError(f"{name!r} is not a valid SQL function name (letters, digits, _)")
    resolved = resolve_model(model_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
    ship_folder, local_path = download_model(resolved, tracking_uri=tracking_uri)
    signature = Model.load(str(local_path)).signature
    if signature is None:
        raise ModelUsageError(
            f"{name}: model {model_uri} was logged without a signature; log it with "
            "signature=infer_signature(features_frame, predictions)"
        )
    inputs = signature_inputs(signature, name)
    return_type, output_names = signature_return_type(signature, name)
    spec = ScoringSpec(
        function_name=name,
        input_names=tuple(item.name for item in inputs),
        input_dtypes=tuple(item.numpy_dtype for item in inputs),
        output_names=output_names,
        input_types=tuple(item.spark_type for item in inputs),
    )
    # One archive, unpacked by Spark next to each executor's files: `addFile` of a folder is
    # refused outside local mode.
    archive = shutil.make_archive(str(ship_folder), "zip", root_dir=ship_folder)
    spark.sparkContext.addArchive(archive)
    shipped_name = (Path(archive).name / local_path.relative_to(ship_folder)).as_posix()
    scorer = BatchScorer(spec, shipped_name)
    udf = spark.udf.register(name, _iterator_pandas_udf(scorer, return_type))
    function = ModelFunction(
        name=name,
        model=resolved,
        local_path=str(local_path),
        inputs=inputs,
        return_type=return_type,
        udf=udf,
    )
    return function, spec


def remember_function(function: ModelFunction) -> None:
    """Record `function` as registered in this process (see `registered_functions`)."""
    _REGISTERED[function.name.lower()] = function
