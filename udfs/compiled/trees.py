"""Decision trees and tree ensembles as nested `CASE WHEN` expressions.

scikit-learn's trees (DecisionTree, RandomForest, ExtraTrees, GradientBoosting) compare a
feature cast to float32 with a float64 threshold: `float32(x) <= t`. Rounding to float32 is
monotone, so that test equals `x <= t32(t)` for one double `t32(t)` computed here
(`float32_threshold`); the compiled expression compares doubles only, with no cast per split.
HistGradientBoosting compares float64 values directly.

Ensembles add their trees in scikit-learn's order, so sums agree bit for bit; classifier
probabilities are per-tree arrays indexed per class (Spark's subexpression elimination
evaluates each tree once per row).

Each tree of a sum is written `greatest(tree, tree)` (`own_method`). The value is the tree's
(a tree's leaves are finite numbers), but the repetition makes the tree a common
subexpression: Spark evaluates it once per row and, as the trees' code is over
`spark.sql.codegen.methodSplitThreshold`, generates it in a method of its own. Whole-stage code
generation thus keeps every method under HotSpot's 8,000-byte JIT limit without lowering
`spark.sql.codegen.hugeMethodLimit` (GradientBoosting 20x3: largest method 2.9 kB against
11 kB for the plain sum; docs/performance.md, "Compiled scoring").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from udfs.compiled.estimators import Prediction, binary_probabilities, expit, first_argmax, softmax
from udfs.compiled.features import Context, Feature, numbers
from udfs.compiled.sql_text import Unsupported, double, total

# Upper bound on tree nodes in one compiled expression, from measurement (docs/performance.md,
# "Compiled scoring"): GradientBoosting 20x3 (300 nodes) compiled 1.5-1.7x faster than the UDF,
# 100x3 (1,496 nodes) 2.4x slower (the generated code no longer fits methods the JIT compiles).
MAX_TREE_NODES = 500
# A tree with more nodes than this generates a method near HotSpot's 8,000-byte JIT limit on its
# own (measured, a regression tree's whole-stage method: 127 nodes 4.4 kB, 199 nodes 6.3 kB,
# 255 nodes 7.8 kB, 299 nodes 9.0 kB): `udfs.compiled` then lowers Spark's huge-method limit,
# so that stage runs without whole-stage codegen, in small methods.
JIT_TREE_NODES = 200

CLASSIFIER_FORESTS = ("RandomForestClassifier", "ExtraTreesClassifier")
REGRESSOR_FORESTS = ("RandomForestRegressor", "ExtraTreesRegressor")
TREES = ("DecisionTreeClassifier", "DecisionTreeRegressor")
BOOSTED = ("GradientBoostingClassifier", "GradientBoostingRegressor")
HIST_BOOSTED = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")


def float32_threshold(threshold: float) -> float:
    """The largest double `b` with `float32(x) <= threshold` exactly when `x <= b`.

    Args:
        threshold: a split threshold (float64) that scikit-learn compares float32 values with.

    """
    with np.errstate(over="ignore"):
        below = np.float32(threshold)
        if float(below) > threshold:
            below = np.nextafter(below, np.float32(-np.inf))
        above = np.nextafter(below, np.float32(np.inf))
        if np.isinf(above):
            middle = float(below) + 2.0**103  # half an ulp of the largest float32
        else:
            middle = (float(below) + float(above)) / 2.0  # exact: 25 significant bits
        if float(np.float32(middle)) <= threshold:
            return middle
    return float(np.nextafter(middle, -np.inf))


def _check_size(nodes: int, ctx: Context, bound: int) -> None:
    if ctx.nodes + nodes > bound:
        raise Unsupported(
            f"{ctx.nodes + nodes} tree nodes exceed the compiled size bound {bound} "
            "(past it Spark's generated code is slower than the UDF)"
        )


def own_method(tree: str, ctx: Context) -> str:
    """`greatest(tree, tree)`: the tree once per row, generated in its own method (see above).

    The tree's text is shared (`Context.share`): parsed once, the same expression twice.
    """
    shared = ctx.share(tree)
    return f"greatest({shared}, {shared})"


def _tree_sql(
    left: NDArray[Any],
    right: NDArray[Any],
    feature: NDArray[Any],
    threshold: NDArray[Any],
    leaf: Callable[[int], str],
    features: list[Feature],
    ctx: Context,
    *,
    float32: bool,
) -> str:
    def node(n: int) -> str:
        if left[n] == right[n]:  # -1 in sklearn trees; both 0 in HGB leaves
            return leaf(n)
        column = features[int(feature[n])]
        t = float(threshold[n])
        bound = float32_threshold(t) if float32 else t
        ctx.probe(column, t, bound, float(np.nextafter(bound, np.inf)))
        return (
            f"CASE WHEN {column.sql} <= {double(bound)} THEN {node(int(left[n]))} "
            f"ELSE {node(int(right[n]))} END"
        )

    return f"({node(0)})"


def _sk_tree(tree: Any, leaf: Callable[[int], str], features: list[Feature], ctx: Context) -> str:
    ctx.largest_tree = max(ctx.largest_tree, int(tree.node_count))
    return _tree_sql(
        tree.children_left,
        tree.children_right,
        tree.feature,
        tree.threshold,
        leaf,
        features,
        ctx,
        float32=True,
    )


def _leaf_probabilities(tree: Any, n_classes: int) -> NDArray[np.float64]:
    """Per-leaf class probabilities as DecisionTreeClassifier.predict_proba normalises them."""
    proba = np.array(tree.value[:, 0, :n_classes], dtype=np.float64)
    normalizer = proba.sum(axis=1)[:, np.newaxis]
    normalizer[normalizer == 0.0] = 1.0
    result: NDArray[np.float64] = proba / normalizer
    return result


def _array_leaf(rows: NDArray[np.float64]) -> Callable[[int], str]:
    return lambda n: f"array({', '.join(double(v) for v in rows[n])})"


def _value_leaf(values: NDArray[Any]) -> Callable[[int], str]:
    """Leaf `n` as the double `values[n]`."""
    return lambda n: double(float(values[n]))


def _single_output(model: Any) -> None:
    if getattr(model, "n_outputs_", 1) != 1:
        raise Unsupported(f"{type(model).__name__} with {model.n_outputs_} outputs")


def decision_tree(model: Any, features: list[Feature], ctx: Context, bound: int) -> Prediction:
    """A single tree: the leaf value, or the leaf's class and normalised class weights."""
    numbers(features, type(model).__name__)
    _single_output(model)
    tree = model.tree_
    _check_size(tree.node_count, ctx, bound)
    ctx.nodes += tree.node_count
    if type(model).__name__ == "DecisionTreeRegressor":
        return Prediction(value=_sk_tree(tree, _value_leaf(tree.value[:, 0, 0]), features, ctx))
    classes = tuple(model.classes_.tolist())
    winners = np.argmax(tree.value[:, 0, : len(classes)], axis=1)
    class_index = _sk_tree(tree, lambda n: str(int(winners[n])), features, ctx)
    rows = _leaf_probabilities(tree, len(classes))
    arrays = ctx.share(_sk_tree(tree, _array_leaf(rows), features, ctx))
    probabilities = tuple(f"{arrays}[{k}]" for k in range(len(classes)))
    return Prediction(classes=classes, class_index=class_index, probabilities=probabilities)


def forest(model: Any, features: list[Feature], ctx: Context, bound: int) -> Prediction:
    """Random forest / extra trees: the mean of the trees (of their normalised class weights)."""
    numbers(features, type(model).__name__)
    _single_output(model)
    trees = [estimator.tree_ for estimator in model.estimators_]
    _check_size(sum(t.node_count for t in trees), ctx, bound)
    ctx.nodes += sum(t.node_count for t in trees)
    count = double(float(len(trees)))
    if type(model).__name__ in REGRESSOR_FORESTS:
        parts = [
            own_method(_sk_tree(t, _value_leaf(t.value[:, 0, 0]), features, ctx), ctx)
            for t in trees
        ]
        return Prediction(value=f"({total(parts)} / {count})")
    classes = tuple(model.classes_.tolist())
    arrays = [
        ctx.share(_sk_tree(t, _array_leaf(_leaf_probabilities(t, len(classes))), features, ctx))
        for t in trees
    ]
    probabilities: tuple[str, ...] = tuple(
        f"({total([f'{a}[{k}]' for a in arrays])} / {count})" for k in range(len(classes))
    )
    return Prediction(
        classes=classes, class_index=first_argmax(list(probabilities)), probabilities=probabilities
    )


def _boosted_classes(model: Any, raw: list[str], *, strict: bool) -> Prediction:
    classes = tuple(model.classes_.tolist())
    loss = type(model._loss).__name__
    if len(raw) == 1:
        test = ">" if strict else ">="
        binary = binary_probabilities(expit(raw[0])) if loss == "HalfBinomialLoss" else None
        return Prediction(
            classes=classes,
            class_index=f"(CASE WHEN {raw[0]} {test} 0D THEN 1 ELSE 0 END)",
            probabilities=binary,
        )
    proba = softmax(raw) if loss == "HalfMultinomialLoss" else None
    return Prediction(classes=classes, class_index=first_argmax(raw), probabilities=proba)


def gradient_boosting(model: Any, features: list[Feature], ctx: Context, bound: int) -> Prediction:
    """Init estimator's constant plus learning_rate * each stage's tree, per class column."""
    numbers(features, type(model).__name__)
    init = model.init_
    if not (isinstance(init, str) and init == "zero") and type(init).__name__ not in (
        "DummyRegressor",
        "DummyClassifier",
    ):
        raise Unsupported(f"GradientBoosting with init estimator {type(init).__name__}")
    stages = model.estimators_
    _check_size(sum(e.tree_.node_count for e in stages.ravel()), ctx, bound)
    ctx.nodes += sum(e.tree_.node_count for e in stages.ravel())
    start = model._raw_predict_init(np.zeros((1, model.n_features_in_)))[0]
    rate = float(model.learning_rate)
    raw = []
    for k in range(stages.shape[1]):
        parts = []
        for stage in stages[:, k]:
            tree = stage.tree_
            scaled = rate * tree.value[:, 0, 0].astype(np.float64)
            parts.append(own_method(_sk_tree(tree, _value_leaf(scaled), features, ctx), ctx))
        raw.append(total(parts, start=double(float(start[k]))))
    if type(model).__name__ == "GradientBoostingRegressor":
        return Prediction(value=raw[0])
    return _boosted_classes(model, raw, strict=False)


def hist_gradient_boosting(
    model: Any, features: list[Feature], ctx: Context, bound: int
) -> Prediction:
    """Baseline plus each iteration's tree per class column, float64 thresholds."""
    numbers(features, type(model).__name__)
    if getattr(model, "_preprocessor", None) is not None or (
        model.is_categorical_ is not None and bool(np.any(model.is_categorical_))
    ):
        raise Unsupported("HistGradientBoosting with categorical features")
    predictors = model._predictors
    _check_size(sum(p.nodes.shape[0] for it in predictors for p in it), ctx, bound)
    ctx.nodes += sum(p.nodes.shape[0] for it in predictors for p in it)
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    raw = []
    for k in range(model.n_trees_per_iteration_):
        parts = []
        for iteration in predictors:
            nodes = iteration[k].nodes
            for flagged in nodes[nodes["is_leaf"] == 0]:
                if flagged["is_categorical"]:
                    raise Unsupported("HistGradientBoosting with categorical splits")
            left = np.where(nodes["is_leaf"] == 1, -1, nodes["left"].astype(np.int64))
            right = np.where(nodes["is_leaf"] == 1, -1, nodes["right"].astype(np.int64))
            ctx.largest_tree = max(ctx.largest_tree, int(nodes.shape[0]))
            tree_sql = _tree_sql(
                left,
                right,
                nodes["feature_idx"],
                nodes["num_threshold"],
                _value_leaf(nodes["value"]),
                features,
                ctx,
                float32=False,
            )
            parts.append(own_method(tree_sql, ctx))
        raw.append(total(parts, start=double(float(0.0 + baseline[k]))))
    if type(model).__name__ == "HistGradientBoostingRegressor":
        link = type(model._loss.link).__name__
        if link == "IdentityLink":
            return Prediction(value=raw[0])
        if link == "LogLink":
            return Prediction(value=f"exp({raw[0]})")
        raise Unsupported(f"HistGradientBoostingRegressor with link {link}")
    return _boosted_classes(model, raw, strict=True)
