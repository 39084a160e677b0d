"""Linear models as SQL: the dot product, then the intercept, as scikit-learn computes them.

scikit-learn's dot product goes through BLAS, which may add in another order; the registration
check allows for that (1e-9 relative) and falls back when a sample disagrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from udfs.compiled.estimators import Prediction, binary_probabilities, expit, first_argmax, softmax
from udfs.compiled.features import Context, Feature, numbers
from udfs.compiled.sql_text import Unsupported, double, total

REGRESSORS = ("LinearRegression", "Ridge", "Lasso", "ElasticNet")
CLASSIFIERS = ("LogisticRegression",)


def _score(
    coef: NDArray[np.float64], intercept: float, features: list[Feature], ctx: Context
) -> str:
    terms = [
        f"({double(float(c))} * {feature.sql})"
        for c, feature in zip(coef, features, strict=True)
        if float(c) != 0.0
    ]
    ctx.nodes += len(terms)
    return f"({total(terms)} + {double(intercept)})"


def linear_regressor(model: Any, features: list[Feature], ctx: Context) -> Prediction:
    """`X @ coef_ + intercept_` for a single-target linear regressor."""
    numbers(features, type(model).__name__)
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.ndim != 1:
        raise Unsupported(f"{type(model).__name__} with {coef.shape[0]} targets")
    intercept = float(np.asarray(model.intercept_, dtype=np.float64).reshape(-1)[0])
    return Prediction(value=_score(coef, intercept, features, ctx))


def logistic_regression(model: Any, features: list[Feature], ctx: Context) -> Prediction:
    """Binary: `score > 0` and expit; multinomial: argmax and softmax of the scores."""
    numbers(features, "LogisticRegression")
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercepts = np.asarray(model.intercept_, dtype=np.float64).reshape(-1)
    classes = tuple(model.classes_.tolist())
    if len(classes) == 2:
        score = _score(coef[0], float(intercepts[0]), features, ctx)
        return Prediction(
            classes=classes,
            class_index=f"(CASE WHEN {score} > 0D THEN 1 ELSE 0 END)",
            probabilities=binary_probabilities(expit(score)),
        )
    scores = [_score(coef[k], float(intercepts[k]), features, ctx) for k in range(len(classes))]
    return Prediction(
        classes=classes, class_index=first_argmax(scores), probabilities=softmax(scores)
    )
