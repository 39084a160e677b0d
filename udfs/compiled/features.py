"""What flows between translated steps: one SQL expression per feature, plus probing hints.

A `Feature` remembers which model input it is an affine function of (when it is), so a split
threshold or a category seen by a later step can be turned back into an input value worth
testing at registration (`udfs.compiled.verify` probes both sides of every threshold).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from udfs.compiled.sql_text import Unsupported, shared_placeholder

NUMBER = "number"
TEXT = "text"


@dataclass(frozen=True)
class Feature:
    """One column between steps.

    Attributes:
        sql: the expression computing it from the bound inputs.
        kind: `number` (a double) or `text` (a string, before encoding).
        source: the model input it is derived from by a monotone map, or None.
        to_input: maps a value of this feature back to its input's value (probing), or None.
        name: the column name, known for the model's own inputs.

    """

    sql: str
    kind: str = NUMBER
    source: int | None = None
    to_input: Callable[[float], float] | None = None
    name: str | None = None

    def derived(self, sql: str, inverse: Callable[[float], float] | None) -> Feature:
        """A feature computed from this one; `inverse` maps its values back to this one's."""
        to_input = None
        if self.to_input is not None and inverse is not None:
            outer = self.to_input
            to_input = lambda value: outer(inverse(value))  # noqa: E731
        return Feature(sql, NUMBER, self.source if to_input else None, to_input)


@dataclass
class Context:
    """Collects, while translating, what the final expression and the verifier need.

    Attributes:
        probes: per model input, values worth testing (thresholds and their neighbours,
            categories).
        refusals: (condition, message) pairs: when a condition holds on a complete row,
            scikit-learn refuses the row, so the compiled expression raises the same way.
        unknown_refused: inputs whose unseen categories scikit-learn refuses (not probed).
        nodes: size of what was emitted (tree nodes and linear terms), for the size bound.
        largest_tree: nodes of the largest single tree (its generated method's size).
        steps: names of the translated steps, for messages.
        shared: texts of shared subexpressions, referenced by `shared_placeholder(index)`.

    """

    probes: dict[int, set[Any]] = field(default_factory=dict)
    refusals: list[tuple[str, str]] = field(default_factory=list)
    unknown_refused: set[int] = field(default_factory=set)
    nodes: int = 0
    largest_tree: int = 0
    steps: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)

    def share(self, sql: str) -> str:
        """A placeholder standing for `sql`, parsed once however often it is used."""
        if sql in self.shared:
            return shared_placeholder(self.shared.index(sql))
        self.shared.append(sql)
        return shared_placeholder(len(self.shared) - 1)

    def probe(self, feature: Feature, *values: Any) -> None:
        """Note values of `feature` worth testing, translated back to its input."""
        if feature.source is None:
            return
        bucket = self.probes.setdefault(feature.source, set())
        for value in values:
            if feature.kind == TEXT:
                bucket.add(value)
                continue
            try:
                raw = feature.to_input(float(value)) if feature.to_input else float(value)
            except (ArithmeticError, ValueError):
                continue
            if raw == raw and abs(raw) != float("inf"):
                bucket.add(float(raw))


def numbers(features: list[Feature], step: str) -> list[Feature]:
    """Check that every feature is numeric before a step that computes with them."""
    for feature in features:
        if feature.kind != NUMBER:
            raise Unsupported(f"{step} receives text column {feature.name or feature.sql!r}")
    return features
