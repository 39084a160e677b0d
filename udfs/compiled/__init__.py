"""Compiled scoring: a scikit-learn model behind an MLflow pyfunc as a native Spark expression.

`compile_model_function` is called by `udfs.register_model_function`
(`udfs.compiled.model_registration`) after the pandas UDF is registered. It translates the model
(`udfs.compiled.translate`), proves the translation on a sample (`udfs.compiled.verify`) and
then replaces the SQL function with a builder that expands every call into the compiled
expression (`udfs.compiled.registration`). Anything unsupported, too large, or disagreeing keeps
the UDF, with the reason logged once and kept on the function (`function.path == "udf"`,
`function.fallback_reason`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from udfs.compiled.registration import (
    CompiledCall,
    CompiledFunctionBuilder,
    parse_template,
    register_builder,
)
from udfs.compiled.sql_text import Unsupported, expand
from udfs.compiled.translate import Translation, translate_model
from udfs.compiled.trees import JIT_TREE_NODES, MAX_TREE_NODES, float32_threshold
from udfs.compiled.verdict_cache import (
    COMPILED,
    UDF,
    Verdict,
    read_verdict,
    remember_model,
    verdict_key,
    write_verdict,
)
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
    "Verdict",
    "compile_model_function",
    "describe_path",
    "float32_threshold",
    "translate_model",
]

_LOG = logging.getLogger(__name__)
# Java's JIT leaves methods over 8,000 bytes of bytecode interpreted; Spark's default limit
# for a whole-stage method is 65,535. A tree sum written plainly is one method: GradientBoosting
# 20x3 took 20-27 s on 4M rows at the default limit, 2.5 s at 8,000 (whole-stage codegen off for
# the stage). Written with a method per tree (`trees.own_method`) it stays whole-stage and
# JIT-compiled at the default limit (about 1 s), so the limit is lowered only for trees too
# large for one method.
SUBEXPRESSIONS = "spark.sql.subexpressionElimination.enabled"
HUGE_METHOD_LIMIT = "spark.sql.codegen.hugeMethodLimit"
HOTSPOT_METHOD_LIMIT = "8000"
SPARK_DEFAULT_METHOD_LIMIT = "65535"


def _load(local_path: str) -> tuple[Any, Any, str, Any]:
    """The pyfunc model, the scikit-learn model it wraps, its method, and the input example."""
    import mlflow.pyfunc
    from mlflow.models import Model

    meta = Model.load(local_path)
    if "sklearn" not in meta.flavors:
        flavors = ", ".join(sorted(k for k in meta.flavors if k != "python_function"))
        raise Unsupported(f"the model is not a scikit-learn model (flavor {flavors or 'pyfunc'})")
    predict_fn = meta.flavors.get("python_function", {}).get("predict_fn", "predict")
    # No dependency-mismatch warnings: the verification proves the expression against the model
    # as loaded here, and the warnings' check cost 0.4 s of a fresh process's registration.
    pyfunc_model = mlflow.pyfunc.load_model(local_path, suppress_warnings=True)
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

    The verdict is cached per model version and translator (`udfs.compiled.verdict_cache`):
    a model proven once registers in later processes without loading it in the driver.

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
    started = time.perf_counter()
    try:
        key = verdict_key(function, max_tree_nodes)
    except OSError:
        key = None
    verdict = read_verdict(key) if key is not None else None
    origin = "cached verdict"
    builder = None
    if verdict is None:
        origin = "verified"
        try:
            verdict, builder = _prove(spark, function, python_udf, spec, max_tree_nodes)
        except Exception as exc:
            return _fallback(function, f"compilation failed ({type(exc).__name__}: {exc})")
        if key is not None:
            write_verdict(key, verdict)
    if key is not None:
        remember_model(function.model.model_uri, key)
    if verdict.path != COMPILED:
        return _fallback(function, verdict.reason)
    try:
        if builder is None:
            builder = _builder(spark, function, python_udf, verdict.sql, verdict.shared)
        register_builder(spark, function.name, builder)
    except Exception as exc:
        return _fallback(function, f"compilation failed ({type(exc).__name__}: {exc})")
    _keep_methods_jit_sized(spark, function, verdict)
    _LOG.info(
        "%s: compiled to a Spark expression (%s; %d nodes; %s on %d rows; %.1f s)",
        function.name,
        " -> ".join(verdict.steps),
        verdict.nodes,
        origin,
        verdict.verified_rows,
        time.perf_counter() - started,
    )
    return dataclasses.replace(
        function,
        udf=CompiledCall(function.name),
        path=COMPILED,
        compiled_sql=expand(verdict.sql, verdict.shared),
        verified_rows=verdict.verified_rows,
    )


def _builder(
    spark: SparkSession, function: ModelFunction, python_udf: Any, sql: str, shared: Sequence[str]
) -> CompiledFunctionBuilder:
    judf = getattr(python_udf, "_unwrapped", python_udf)._judf
    return CompiledFunctionBuilder(spark, function, parse_template(spark, sql, shared), judf)


def _prove(
    spark: SparkSession,
    function: ModelFunction,
    python_udf: Any,
    spec: ScoringSpec,
    max_tree_nodes: int,
) -> tuple[Verdict, CompiledFunctionBuilder | None]:
    """Translate and verify the model: a compiled verdict and its builder, or a UDF verdict.

    Raises:
        Exception: anything but an unsupported step or a disagreement (not a verdict to keep).

    """
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
        builder = _builder(spark, function, python_udf, translation.sql, translation.shared)
        rows = sample_rows(function.inputs, example, translation)
        checked = verify_translation(
            spark, builder.column_over, pyfunc_model, spec, function.inputs, rows
        )
    except (Unsupported, Mismatch) as exc:
        return Verdict(UDF, reason=str(exc)), None
    verdict = Verdict(
        COMPILED,
        sql=translation.sql,
        shared=translation.shared,
        steps=translation.steps,
        nodes=translation.nodes,
        largest_tree=translation.largest_tree,
        verified_rows=checked,
    )
    return verdict, builder


def _keep_methods_jit_sized(spark: SparkSession, function: ModelFunction, verdict: Verdict) -> None:
    """Lower Spark's huge-method limit when a tree cannot be generated in JIT-sized methods.

    Each tree of an ensemble gets a method of its own (`udfs.compiled.trees.own_method`), so the
    limit stays as it is unless one tree alone is too large, or subexpression elimination (which
    does the splitting) is off. Then the limit goes to 8,000 when it is at Spark's default (a
    limit set by the user is kept): the stage runs without whole-stage codegen, in small methods.
    """
    if verdict.largest_tree > JIT_TREE_NODES:
        why = f"its largest tree has {verdict.largest_tree} nodes (over {JIT_TREE_NODES})"
    elif verdict.largest_tree and spark.conf.get(SUBEXPRESSIONS, "true") == "false":
        why = f"{SUBEXPRESSIONS} is false"
    else:
        return
    if spark.conf.get(HUGE_METHOD_LIMIT, SPARK_DEFAULT_METHOD_LIMIT) == SPARK_DEFAULT_METHOD_LIMIT:
        spark.conf.set(HUGE_METHOD_LIMIT, HOTSPOT_METHOD_LIMIT)
        _LOG.warning(
            "%s: set %s=%s for the whole session: %s, so its generated code would exceed "
            "HotSpot's JIT limit",
            function.name,
            HUGE_METHOD_LIMIT,
            HOTSPOT_METHOD_LIMIT,
            why,
        )


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
