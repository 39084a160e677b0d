"""Preprocessing steps as SQL: scalers, imputer, one-hot encoder, ColumnTransformer, Pipeline.

Each translator takes the fitted step and its input features and returns its output features,
repeating scikit-learn's own arithmetic in the same order (so doubles agree bit for bit where
scikit-learn does no BLAS reduction).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from udfs.compiled.features import NUMBER, TEXT, Context, Feature, numbers
from udfs.compiled.sql_text import Unsupported, double, known_placeholder, placeholder, string

if TYPE_CHECKING:
    from udfs.model_function import ModelInput


def _is_missing_marker(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _unscale(mean: float, scale: float) -> Callable[[float], float]:
    """The inverse of `(x - mean) / scale`, mapping a scaled value back (probing)."""
    return lambda value: value * scale + mean


def standard_scaler(step: Any, features: list[Feature], ctx: Context) -> list[Feature]:
    """`(x - mean_) / scale_`, each part only when the scaler was fitted with it."""
    numbers(features, "StandardScaler")
    out = []
    for i, feature in enumerate(features):
        sql, mean, scale = feature.sql, 0.0, 1.0
        if step.mean_ is not None and step.with_mean:
            mean = float(step.mean_[i])
            sql = f"({sql} - {double(mean)})"
        if step.scale_ is not None and step.with_std:
            scale = float(step.scale_[i])
            sql = f"({sql} / {double(scale)})"
        out.append(feature.derived(sql, _unscale(mean, scale)))
    return out


def min_max_scaler(step: Any, features: list[Feature], ctx: Context) -> list[Feature]:
    """`x * scale_ + min_`, clipped to the feature range when `clip=True`."""
    numbers(features, "MinMaxScaler")
    low, high = (float(v) for v in step.feature_range)
    out = []
    for i, feature in enumerate(features):
        scale, offset = float(step.scale_[i]), float(step.min_[i])
        sql = f"(({feature.sql} * {double(scale)}) + {double(offset)})"
        if step.clip:
            sql = f"least(greatest({sql}, {double(low)}), {double(high)})"
        inverse = (lambda v, s=scale, o=offset: (v - o) / s) if scale else None
        out.append(feature.derived(sql, inverse))
    return out


def simple_imputer(step: Any, features: list[Feature], ctx: Context) -> list[Feature]:
    """Replace the missing marker by the fitted statistic; a null or NaN row is never scored.

    Rows with a null or NaN input get a null prediction before the model sees them (the
    documented policy of both paths), so with NaN as the marker the imputer is the identity.
    """
    marker = step.missing_values
    statistics = list(step.statistics_)
    keep_empty = getattr(step, "keep_empty_features", False)
    out = []
    kept = []
    for i, feature in enumerate(features):
        stat = statistics[i]
        if _is_missing_marker(stat) and not keep_empty and step.strategy != "constant":
            continue  # scikit-learn drops columns that were empty when fitted
        kept.append(i)
        if _is_missing_marker(marker):
            out.append(feature)
            continue
        literal = _literal(marker, feature)
        replacement = _literal(stat, feature)
        sql = f"(CASE WHEN {feature.sql} = {literal} THEN {replacement} ELSE {feature.sql} END)"
        ctx.probe(feature, marker)
        out.append(Feature(sql, feature.kind, None, None, feature.name))
    if step.add_indicator and step.indicator_ is not None:
        for index in step.indicator_.features_:
            feature = features[int(index)]
            if _is_missing_marker(marker):
                out.append(Feature("0D"))
            else:
                literal = _literal(marker, feature)
                out.append(Feature(f"(CASE WHEN {feature.sql} = {literal} THEN 1D ELSE 0D END)"))
    return out


def _literal(value: Any, feature: Feature) -> str:
    if feature.kind == TEXT:
        if not isinstance(value, str):
            raise Unsupported(f"non-text value {value!r} for text column {feature.name!r}")
        return string(value)
    if isinstance(value, str):
        raise Unsupported(f"text value {value!r} for numeric column {feature.name!r}")
    return double(float(value))


def one_hot_encoder(step: Any, features: list[Feature], ctx: Context) -> list[Feature]:
    """One 0/1 column per category (minus the dropped one); unseen categories as fitted.

    `handle_unknown='ignore'` (and `infrequent_if_exist` without infrequent categories) gives
    zeros, as scikit-learn does; `error` makes the compiled expression raise, as
    scikit-learn refuses the batch.
    """
    if getattr(step, "_infrequent_enabled", False) and any(
        cats is not None for cats in getattr(step, "infrequent_categories_", [])
    ):
        raise Unsupported("OneHotEncoder with infrequent categories")
    drop_idx = step.drop_idx_
    out = []
    for i, feature in enumerate(features):
        categories = list(step.categories_[i])
        dropped = None if drop_idx is None or drop_idx[i] is None else int(drop_idx[i])
        known = [c for c in categories if not _is_missing_marker(c)]
        literals = [_literal(c.item() if hasattr(c, "item") else c, feature) for c in known]
        ctx.probe(feature, *known)
        if step.handle_unknown == "error":
            ctx.unknown_refused.add(feature.source) if feature.source is not None else None
            ctx.refusals.append(
                (
                    f"NOT ({feature.sql} IN ({', '.join(literals)}))",
                    f"unknown category in column {feature.name or i}: OneHotEncoder "
                    "was fitted with handle_unknown='error'",
                )
            )
        literal_of = dict(zip(map(repr, known), literals, strict=True))
        for j, category in enumerate(categories):
            if j == dropped:
                continue
            if _is_missing_marker(category):
                out.append(Feature("0D"))  # rows with a missing input are never scored
                continue
            literal = literal_of[repr(category)]
            out.append(Feature(f"(CASE WHEN {feature.sql} = {literal} THEN 1D ELSE 0D END)"))
            ctx.nodes += 1
    return out


def column_transformer(step: Any, features: list[Feature], ctx: Context) -> list[Feature]:
    """Each fitted transformer over its columns, outputs concatenated in fitted order."""
    indices = getattr(step, "_transformer_to_input_indices", None)
    if indices is None:
        raise Unsupported("ColumnTransformer without fitted column indices")
    out: list[Feature] = []
    for name, transformer, _columns in step.transformers_:
        columns = [int(i) for i in indices.get(name, [])]
        if transformer == "drop" or not columns:
            continue
        selected = [features[i] for i in columns]
        produced = (
            selected if transformer == "passthrough" else transform(transformer, selected, ctx)
        )
        expected = step.output_indices_[name]
        if expected.stop - expected.start != len(produced):
            raise Unsupported(
                f"ColumnTransformer part {name!r} gives {len(produced)} columns, "
                f"scikit-learn {expected.stop - expected.start}"
            )
        out.extend(produced)
    return out


def pipeline(step: Any, features: list[Feature], ctx: Context) -> list[Feature]:
    """A nested Pipeline of transformers."""
    for _name, inner in step.steps:
        if inner is None or inner == "passthrough":
            continue
        features = transform(inner, features, ctx)
    return features


TRANSFORMERS: dict[str, Callable[[Any, list[Feature], Context], list[Feature]]] = {
    "StandardScaler": standard_scaler,
    "MinMaxScaler": min_max_scaler,
    "SimpleImputer": simple_imputer,
    "OneHotEncoder": one_hot_encoder,
    "ColumnTransformer": column_transformer,
    "Pipeline": pipeline,
}


def transform(step: Any, features: list[Feature], ctx: Context) -> list[Feature]:
    """Translate one fitted transformer.

    Raises:
        Unsupported: the transformer (or a setting of it) has no translation.

    """
    kind = type(step).__name__
    translator = TRANSFORMERS.get(kind)
    if translator is None or not type(step).__module__.startswith("sklearn."):
        raise Unsupported(f"{kind} is not supported")
    n_in = getattr(step, "n_features_in_", len(features))
    if n_in != len(features):
        raise Unsupported(f"{kind} expects {n_in} columns, receives {len(features)}")
    ctx.steps.append(kind)
    result = translator(step, features, ctx)
    if kind != "Pipeline" and hasattr(step, "get_feature_names_out"):
        try:
            expected = len(step.get_feature_names_out())
        except Exception:
            expected = len(result)
        if expected != len(result):
            raise Unsupported(f"{kind} gives {len(result)} columns, scikit-learn {expected}")
    return result


def _same(value: float) -> float:
    return value


def input_features(inputs: Sequence[ModelInput]) -> list[Feature]:
    """The model's inputs as features: strings stay text, numbers become doubles.

    Numbers are read through their known-not-null placeholders (the null guard answers rows
    with a null input before any feature matters); text keeps the plain one, since a string
    comparison on a null known not to be null would fail in generated code.
    """
    out = []
    for position, item in enumerate(inputs):
        if item.spark_type == "string":
            out.append(Feature(placeholder(position), TEXT, position, None, item.name))
        elif item.spark_type in ("double",):
            out.append(Feature(known_placeholder(position), NUMBER, position, _same, item.name))
        elif item.spark_type in ("float", "long", "integer", "short", "byte", "boolean"):
            cast = f"CAST({known_placeholder(position)} AS DOUBLE)"
            out.append(Feature(cast, NUMBER, position, _same, item.name))
        else:
            raise Unsupported(f"input {item.name!r} of type {item.spark_type}")
    return out
