"""A fitted scikit-learn model behind an MLflow pyfunc, as one Spark SQL expression.

`translate_model` walks the pipeline (transformers, then the estimator), and wraps the result
in the same policy as the pandas UDF: a row with a null or NaN input gets a null prediction;
a complete row scikit-learn would refuse (an infinite value, an unknown category under
`handle_unknown='error'`) makes the query fail, as the UDF's task would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from udfs.compiled import linear, preprocessing, trees
from udfs.compiled.estimators import Prediction
from udfs.compiled.features import Context, Feature
from udfs.compiled.sql_text import Unsupported, label, placeholder, string

if TYPE_CHECKING:
    from pyspark.sql.types import DataType

    from udfs.model_function import ModelInput


@dataclass(frozen=True)
class Translation:
    """A model compiled to SQL text over the placeholders `__lakegate_in_<i>`.

    Attributes:
        sql: the expression, typed as the function's return type, with shared subexpressions
            (trees) as placeholders `__lakegate_tree_<k>`.
        shared: the shared subexpressions' texts, by index (`sql_text.expand` joins them).
        nodes: tree nodes and linear terms emitted (the size bound counts these).
        largest_tree: nodes of the largest single tree (0 without trees).
        steps: the translated steps, in order.
        probes: per input position, values worth testing at registration.
        unknown_refused: inputs whose unseen categories scikit-learn refuses.

    """

    sql: str
    nodes: int
    steps: tuple[str, ...]
    shared: tuple[str, ...] = ()
    largest_tree: int = 0
    probes: dict[int, set[Any]] = field(default_factory=dict)
    unknown_refused: frozenset[int] = frozenset()


def _estimator(model: Any, features: list[Feature], ctx: Context, bound: int) -> Prediction:
    kind = type(model).__name__
    if not type(model).__module__.startswith("sklearn."):
        raise Unsupported(f"{kind} is not a scikit-learn estimator")
    ctx.steps.append(kind)
    if kind in linear.REGRESSORS:
        return linear.linear_regressor(model, features, ctx)
    if kind in linear.CLASSIFIERS:
        return linear.logistic_regression(model, features, ctx)
    if kind in trees.TREES:
        return trees.decision_tree(model, features, ctx, bound)
    if kind in trees.CLASSIFIER_FORESTS + trees.REGRESSOR_FORESTS:
        return trees.forest(model, features, ctx, bound)
    if kind in trees.BOOSTED:
        return trees.gradient_boosting(model, features, ctx, bound)
    if kind in trees.HIST_BOOSTED:
        return trees.hist_gradient_boosting(model, features, ctx, bound)
    raise Unsupported(f"{kind} is not supported")


def _check_feature_names(model: Any, inputs: Sequence[ModelInput]) -> None:
    names = getattr(model, "feature_names_in_", None)
    if names is not None and list(names) != [item.name for item in inputs]:
        raise Unsupported(
            f"the model was fitted on columns {list(names)}, the signature lists "
            f"{[item.name for item in inputs]}"
        )


def _null_guard(inputs: Sequence[ModelInput]) -> str:
    checks = []
    for position, item in enumerate(inputs):
        ref = placeholder(position)
        checks.append(f"{ref} IS NULL")
        if item.spark_type in ("double", "float"):
            checks.append(f"isnan({ref})")
    return " OR ".join(checks)


def _nullifier(
    function_name: str, inputs: Sequence[ModelInput], ctx: Context, zero: str, *, finite: bool
) -> str:
    """`NULL` for incomplete rows, an error for refused rows, else `zero` (added to the result)."""
    refusals = list(ctx.refusals)
    if finite:
        for position, item in enumerate(inputs):
            if item.spark_type in ("double", "float"):
                refusals.append(
                    (
                        f"abs({placeholder(position)}) = CAST('Infinity' AS DOUBLE)",
                        f"input {item.name!r} is infinite, which scikit-learn refuses",
                    )
                )
    whens = "".join(
        f" WHEN {condition} THEN raise_error({string(f'{function_name}: {message}')})"
        for condition, message in refusals
    )
    return f"(CASE WHEN {_null_guard(inputs)} THEN NULL{whens} ELSE {zero} END)"


def translate_model(
    model: Any,
    predict_fn: str,
    inputs: Sequence[ModelInput],
    return_type: DataType,
    output_names: Sequence[str] | None,
    *,
    function_name: str,
    max_tree_nodes: int = trees.MAX_TREE_NODES,
) -> Translation:
    """Translate a fitted scikit-learn model (or Pipeline) into one SQL expression.

    Args:
        model: the fitted estimator or Pipeline the pyfunc wraps.
        predict_fn: the pyfunc's prediction method (`predict` or `predict_proba`).
        inputs: the signature's inputs, in order (the placeholders' positions).
        return_type: the function's Spark return type.
        output_names: the struct fields when the output is a struct (one per class).
        function_name: the SQL function name, for error messages raised by the expression.
        max_tree_nodes: the size bound for tree models.

    Raises:
        Unsupported: a step, estimator, setting or output has no translation.

    """
    _check_feature_names(model, inputs)
    ctx = Context()
    features = preprocessing.input_features(inputs)
    steps = list(model.steps) if type(model).__name__ == "Pipeline" else [("model", model)]
    for _name, step in steps[:-1]:
        if step is None or step == "passthrough":
            continue
        features = preprocessing.transform(step, features, ctx)
    estimator = steps[-1][1]
    n_in = getattr(estimator, "n_features_in_", len(features))
    if n_in != len(features):
        raise Unsupported(f"the estimator expects {n_in} columns, receives {len(features)}")
    prediction = _estimator(estimator, features, ctx, max_tree_nodes)
    finite = ctx.steps != [type(estimator).__name__] or type(estimator).__name__ not in (
        trees.HIST_BOOSTED
    )
    sql = _output(prediction, predict_fn, output_names, function_name, inputs, ctx, finite)
    return Translation(
        sql=f"CAST({sql} AS {return_type.simpleString()})",
        shared=tuple(ctx.shared),
        nodes=ctx.nodes,
        steps=tuple(ctx.steps),
        largest_tree=ctx.largest_tree,
        probes=ctx.probes,
        unknown_refused=frozenset(ctx.unknown_refused),
    )


def _output(
    prediction: Prediction,
    predict_fn: str,
    output_names: Sequence[str] | None,
    function_name: str,
    inputs: Sequence[ModelInput],
    ctx: Context,
    finite: bool,
) -> str:
    if predict_fn == "predict" and output_names is None:
        if prediction.value is not None:
            nullifier = _nullifier(function_name, inputs, ctx, "0D", finite=finite)
            return f"({prediction.value} + {nullifier})"
        labels = ", ".join(label(c) for c in prediction.classes or ())
        nullifier = _nullifier(function_name, inputs, ctx, "0", finite=finite)
        return f"(array({labels}))[{prediction.class_index} + {nullifier}]"
    if predict_fn == "predict_proba" and output_names is not None:
        if prediction.probabilities is None:
            raise Unsupported("predict_proba of this estimator")
        if len(output_names) != len(prediction.probabilities):
            raise Unsupported(
                f"predict_proba gives {len(prediction.probabilities)} columns, the signature "
                f"{len(output_names)}"
            )
        nullifier = _nullifier(function_name, inputs, ctx, "0D", finite=finite)
        fields = ", ".join(
            f"{string(name)}, ({p} + {nullifier})"
            for name, p in zip(output_names, prediction.probabilities, strict=True)
        )
        return f"named_struct({fields})"
    raise Unsupported(
        f"pyfunc method {predict_fn} with {'a struct' if output_names else 'a single'} output"
    )
