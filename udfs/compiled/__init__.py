"""Compiled scoring: a scikit-learn model behind an MLflow pyfunc as a native Spark expression.

`compile_model_function` is called by `udfs.register_model_function` after the pandas UDF is
registered. It translates the model (`udfs.compiled.translate`), proves the translation on a
sample (`udfs.compiled.verify`) and then replaces the SQL function with a builder that expands
every call into the compiled expression (`udfs.compiled.registration`). Anything unsupported,
too large, or disagreeing keeps the UDF, with the reason logged once and kept on the function
(`function.path == "udf"`, `function.fallback_reason`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from udfs.compiled.sql_text import Unsupported
from udfs.compiled.translate import Translation, translate_model
from udfs.compiled.trees import MAX_TREE_NODES, float32_threshold
from udfs.compiled.verify import Mismatch, sample_rows, verify_translation

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from udfs.model_function import ModelFunction
    from udfs.scoring import ScoringSpec

__all__ = [
    "MAX_TREE_NODES",
    "Mismatch",
    "Translation",
    "Unsupported",
    "compile_model_function",
    "describe_path",
    "float32_threshold",
    "translate_model",
]

COMPILED = "compiled"
UDF = "udf"
_LOG = logging.getLogger(__name__)
# Java's JIT leaves methods over 8,000 bytes of bytecode interpreted; Spark's default limit
# for a whole-stage method is 65,535. Tree models generate large methods: measured with
# GradientBoosting 20x3, 2.3 s with the limit at 8,000 against 8-12 s at the default (the UDF:
# 3.3-4.7 s). Spark's documentation recommends 8,000 on HotSpot.
HUGE_METHOD_LIMIT = "spark.sql.codegen.hugeMethodLimit"
HOTSPOT_METHOD_LIMIT = "8000"
SPARK_DEFAULT_METHOD_LIMIT = "65535"
TREE_STEPS = ("Tree", "Forest", "Trees", "Boosting")


def _load(local_path: str) -> tuple[Any, Any, str, Any]:
    """The pyfunc model, the scikit-learn model it wraps, its method, and the input example."""
    import mlflow.pyfunc
    from mlflow.models import Model

    meta = Model.load(local_path)
    if "sklearn" not in meta.flavors:
        flavors = ", ".join(sorted(k for k in meta.flavors if k != "python_function"))
        raise Unsupported(f"the model is not a scikit-learn model (flavor {flavors or 'pyfunc'})")
    predict_fn = meta.flavors.get("python_function", {}).get("predict_fn", "predict")
    pyfunc_model = mlflow.pyfunc.load_model(local_path)
    raw = pyfunc_model.get_raw_model()
    try:
        example = meta.load_input_example(local_path)
    except Exception:
        example = None
    return pyfunc_model, raw, predict_fn, example


def compile_model_function(
    spark: SparkSession,
    function: ModelFunction,
    python_udf: Any,
    spec: ScoringSpec,
    *,
    max_tree_nodes: int = MAX_TREE_NODES,
) -> ModelFunction:
    """Compile, verify and register `function` natively, or keep its UDF and say why.

    Args:
        spark: the session the function is registered in.
        function: the model function, already registered as a pandas UDF.
        python_udf: the registered UDF object (its JVM function builds the marker call).
        spec: the UDF's scoring spec (reference scoring at verification).
        max_tree_nodes: the size bound for tree models.

    Returns:
        The function, with `path` "compiled" (calls expand to the expression) or "udf"
        (`fallback_reason` says why).

    """
    from udfs.compiled.registration import (
        CompiledCall,
        CompiledFunctionBuilder,
        parse_expression,
        register_builder,
    )

    started = time.perf_counter()
    try:
        pyfunc_model, raw, predict_fn, example = _load(function.local_path)
        translation = translate_model(
            raw,
            predict_fn,
            function.inputs,
            function.return_type,
            spec.output_names,
            function_name=function.name,
            max_tree_nodes=max_tree_nodes,
        )
        template = parse_expression(spark, translation.sql)
        judf = getattr(python_udf, "_unwrapped", python_udf)._judf
        builder = CompiledFunctionBuilder(spark, function, template, judf)
        rows = sample_rows(function.inputs, example, translation)
        checked = verify_translation(
            spark, builder.column_over, pyfunc_model, spec, function.inputs, rows
        )
        register_builder(spark, function.name, builder)
        if any(word in step for step in translation.steps for word in TREE_STEPS):
            _prefer_jit_sized_methods(spark)
    except (Unsupported, Mismatch) as exc:
        return _fallback(function, str(exc))
    except Exception as exc:
        return _fallback(function, f"compilation failed ({type(exc).__name__}: {exc})")
    _LOG.info(
        "%s: compiled to a Spark expression (%s; %d nodes; verified on %d rows in %.1f s)",
        function.name,
        " -> ".join(translation.steps),
        translation.nodes,
        checked,
        time.perf_counter() - started,
    )
    return dataclasses.replace(
        function,
        udf=CompiledCall(function.name),
        path=COMPILED,
        compiled_sql=translation.sql,
        verified_rows=checked,
    )


def _prefer_jit_sized_methods(spark: SparkSession) -> None:
    """Lower Spark's huge-method limit to the JIT's, unless someone chose a limit already."""
    if spark.conf.get(HUGE_METHOD_LIMIT, SPARK_DEFAULT_METHOD_LIMIT) == SPARK_DEFAULT_METHOD_LIMIT:
        spark.conf.set(HUGE_METHOD_LIMIT, HOTSPOT_METHOD_LIMIT)
        _LOG.info("set %s=%s for compiled tree models", HUGE_METHOD_LIMIT, HOTSPOT_METHOD_LIMIT)


def _fallback(function: ModelFunction, reason: str) -> ModelFunction:
    _LOG.warning("%s: scored by the pandas UDF, not compiled: %s", function.name, reason)
    return dataclasses.replace(function, path=UDF, fallback_reason=reason)


def describe_path(function: ModelFunction) -> str:
    """One line saying how a function scores: `predict_users: compiled (...)` or the reason."""
    path = getattr(function, "path", UDF)
    if path == COMPILED:
        return (
            f"{function.description}: compiled Spark expression "
            f"(verified on {function.verified_rows} rows)"
        )
    reason = getattr(function, "fallback_reason", None)
    return f"{function.description}: pandas UDF" + (f" ({reason})" if reason else "")
