"""What an estimator translation gives: a value, or a class index and class probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from udfs.compiled.sql_text import total


@dataclass(frozen=True)
class Prediction:
    """An estimator's outputs as SQL over its input features.

    Attributes:
        value: the regression value (a double), for regressors.
        classes: the fitted `classes_`, for classifiers.
        class_index: 0-based index into `classes` of the predicted class.
        probabilities: one double per class (`predict_proba`), or None when not translated.

    """

    value: str | None = None
    classes: tuple[Any, ...] | None = None
    class_index: str | None = None
    probabilities: tuple[str, ...] | None = None


def first_argmax(scores: list[str]) -> str:
    """0-based index of the first largest score (numpy's argmax), as SQL."""
    if len(scores) == 2:
        return f"(CASE WHEN {scores[0]} >= {scores[1]} THEN 0 ELSE 1 END)"
    listed = ", ".join(scores)
    return f"(array_position(array({listed}), greatest({listed})) - 1)"


def softmax(scores: list[str]) -> tuple[str, ...]:
    """scikit-learn's softmax: subtract the row maximum, exponentiate, divide by the sum."""
    top = f"greatest({', '.join(scores)})"
    exps = [f"exp({score} - {top})" for score in scores]
    denominator = total(exps)
    return tuple(f"({e} / {denominator})" for e in exps)


def expit(score: str) -> str:
    """The logistic function 1 / (1 + exp(-x))."""
    return f"(1D / (1D + exp(-({score}))))"


def binary_probabilities(positive: str) -> tuple[str, str]:
    """`[1 - p, p]`, as scikit-learn stacks a binary probability."""
    return (f"(1D - {positive})", positive)
