"""Anomaly checks: a metric of this run compared by Deequ with the suite's own history.

A suite may hold an `anomalies:` list beside `checks:`. Each entry names a Deequ analyzer, its
column when it has one, a Deequ anomaly-detection strategy with its parameters, and a level::

    anomalies:
      - Size: {strategy: RelativeRateOfChange, maxRateDecrease: 0.8}
      - Completeness: {column: productName, strategy: OnlineNormal, upperDeviationFactor: 3}
      - Mean: {column: price, strategy: SimpleThresholds, lowerBound: 1, upperBound: 50,
               level: warning}

`parse_anomalies` validates the entries before Spark starts (file:line for an unknown analyzer
or strategy, or a missing parameter). `anomaly_analyzers` gives the JVM analyzers a run must
compute (and save in the metrics repository, so that later runs have a history).
`evaluate_anomalies` loads the suite's earlier values of each metric from Deequ's
metrics history (every run's file, same `suite` tag) and lets Deequ decide:
`com.amazon.deequ.anomalydetection.AnomalyDetector(strategy).isNewPointAnomalous(history, now)`.
Deequ does not expose a strategy's bounds for a point it accepts, so they are computed here, per
strategy, with Deequ's formulas, for reporting only; the verdict is Deequ's.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pyspark.sql import DataFrame, SparkSession

from checks.suite import Level, SuiteError
from lakegate_config.yaml_document import Location, YamlDocument, describe_validation_error

__all__ = [
    "ANALYZERS",
    "STRATEGIES",
    "AnalyzerKey",
    "AnomalyCheck",
    "AnomalyResult",
    "anomaly_analyzers",
    "compute_current_metrics",
    "current_metrics",
    "evaluate_anomalies",
    "parse_anomalies",
]

_MIN_DOUBLE = -1.7976931348623157e308  # Scala's Double.MinValue, Deequ's default lower bound


# --------------------------------------------------------------------------------------------
# Strategies: Deequ's names without the `Strategy` suffix, Deequ's parameter names


class _Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ChangeStrategy(_Strategy):
    maxRateDecrease: float | None = None
    maxRateIncrease: float | None = None
    order: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _one_limit(self) -> _ChangeStrategy:
        if self.maxRateDecrease is None and self.maxRateIncrease is None:
            raise ValueError("missing parameter: give maxRateDecrease, maxRateIncrease or both")
        if (
            self.maxRateDecrease is not None
            and self.maxRateIncrease is not None
            and self.maxRateDecrease > self.maxRateIncrease
        ):
            raise ValueError("maxRateDecrease is greater than maxRateIncrease")
        return self


class RelativeRateOfChange(_ChangeStrategy):
    """New value / the value `order` runs before must lie in [maxRateDecrease, maxRateIncrease]."""

    order: int = Field(default=1, ge=1)


class AbsoluteChange(_ChangeStrategy):
    """The `order`-th difference ending at the new value must lie in the two limits."""


class SimpleThresholds(_Strategy):
    """The new value must lie in [lowerBound, upperBound]."""

    lowerBound: float = _MIN_DOUBLE
    upperBound: float

    @model_validator(mode="after")
    def _ordered(self) -> SimpleThresholds:
        if self.lowerBound > self.upperBound:
            raise ValueError("lowerBound is greater than upperBound")
        return self


class _NormalStrategy(_Strategy):
    lowerDeviationFactor: float | None = Field(default=3.0, ge=0)
    upperDeviationFactor: float | None = Field(default=3.0, ge=0)

    @model_validator(mode="after")
    def _one_factor(self) -> _NormalStrategy:
        if self.lowerDeviationFactor is None and self.upperDeviationFactor is None:
            raise ValueError("missing parameter: give lowerDeviationFactor or upperDeviationFactor")
        return self


class OnlineNormal(_NormalStrategy):
    """Running mean and deviation (Welford); outside mean ± factor·stddev is an anomaly."""

    ignoreStartPercentage: float = Field(default=0.1, ge=0, le=1)
    ignoreAnomalies: bool = True


class BatchNormal(_NormalStrategy):
    """Mean and sample deviation of the history; outside mean ± factor·stddev is an anomaly."""

    includeInterval: bool = False


_PERIODS = {("Hourly", "Daily"): 24, ("Daily", "Weekly"): 7, ("Monthly", "Yearly"): 12}


class HoltWinters(_Strategy):
    """Deequ's additive Holt-Winters forecast; needs two full seasons of history."""

    metricsInterval: Literal["Hourly", "Daily", "Monthly"]
    seasonality: Literal["Daily", "Weekly", "Yearly"]

    @model_validator(mode="after")
    def _known_period(self) -> HoltWinters:
        if (self.metricsInterval, self.seasonality) not in _PERIODS:
            known = ", ".join(f"{i}/{s}" for i, s in _PERIODS)
            raise ValueError(f"metricsInterval/seasonality must be one of {known}")
        return self

    @property
    def periodicity(self) -> int:
        """Runs per season."""
        return _PERIODS[(self.metricsInterval, self.seasonality)]


STRATEGIES: dict[str, type[_Strategy]] = {
    "RelativeRateOfChange": RelativeRateOfChange,
    "AbsoluteChange": AbsoluteChange,
    "SimpleThresholds": SimpleThresholds,
    "OnlineNormal": OnlineNormal,
    "BatchNormal": BatchNormal,
    "HoltWinters": HoltWinters,
}


# --------------------------------------------------------------------------------------------
# Analyzers: Deequ's names; what each takes


class _AnalyzerArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str | None = None
    columns: tuple[str, ...] | None = None
    quantile: float | None = Field(default=None, ge=0, le=1)
    pattern: str | None = None
    predicate: str | None = None
    name: str | None = None
    where: str | None = None


# analyzer -> (what it needs: none, column, columns (one or more), pair, compliance; extras)
ANALYZERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Size": ("none", ()),
    **{
        name: ("column", ())
        for name in (
            "Completeness",
            "Mean",
            "Sum",
            "Minimum",
            "Maximum",
            "StandardDeviation",
            "MinLength",
            "MaxLength",
            "ApproxCountDistinct",
            "Entropy",
        )
    },
    "ApproxQuantile": ("column", ("quantile",)),
    "PatternMatch": ("column", ("pattern",)),
    **{name: ("columns", ()) for name in ("Uniqueness", "Distinctness", "UniqueValueRatio")},
    "CountDistinct": ("columns", ()),
    "Correlation": ("pair", ()),
    "Compliance": ("compliance", ("name", "predicate")),
}


class AnalyzerKey(NamedTuple):
    """Which metric: the analyzer, what it reads (column(s), name, parameters) and its filter."""

    analyzer: str
    instance: str
    where: str | None = None


@dataclass(frozen=True)
class AnomalyCheck:
    """One validated `anomalies:` entry."""

    index: int
    analyzer: str
    args: _AnalyzerArgs
    strategy_name: str
    strategy: _Strategy
    level: Level
    line: int | None

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the analyzer reads."""
        if self.args.columns:
            return tuple(self.args.columns)
        return (self.args.column,) if self.args.column else ()

    @property
    def key(self) -> AnalyzerKey:
        """The metric's key in `current` mappings."""
        instance = ",".join(self.columns) or self.args.name or "*"
        if self.args.quantile is not None:
            instance += f"@{self.args.quantile:g}"
        if self.args.pattern is not None:
            instance += f"~{self.args.pattern}"
        return AnalyzerKey(self.analyzer, instance, self.args.where)

    @property
    def label(self) -> str:
        """`Completeness(productName)`, `Size`, `ApproxQuantile(price, 0.5)`."""
        inner = [*self.columns, *([self.args.name] if self.args.name else [])]
        if self.args.quantile is not None:
            inner.append(f"{self.args.quantile:g}")
        text = f"{self.analyzer}({', '.join(inner)})" if inner else self.analyzer
        return text + (f" where {self.args.where}" if self.args.where else "")


class _EntryDoc(BaseModel):
    model_config = ConfigDict(extra="allow")
    strategy: str
    level: Level = Level.ERROR


def _document_at(document: YamlDocument, loc: Location) -> Any:
    data = document.data
    for part in loc:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _suggest(name: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _check_analyzer_args(analyzer: str, args: _AnalyzerArgs) -> str | None:
    """What is missing or extra for this analyzer, or None when the arguments fit."""
    needs, extras = ANALYZERS[analyzer]
    given = {k for k, v in args.model_dump().items() if v is not None} - {"where"}
    allowed = set(extras)
    if needs == "none":
        pass
    elif needs == "column":
        if not args.column:
            return "missing parameter: column"
        allowed.add("column")
    elif needs == "columns":
        if not args.column and not args.columns:
            return "missing parameter: column (or columns)"
        allowed |= {"column", "columns"}
    elif needs == "pair":
        if not args.columns or len(args.columns) != 2:
            return "missing parameter: columns (two columns)"
        allowed.add("columns")
    for extra in extras:
        if getattr(args, extra) is None:
            return f"missing parameter: {extra}"
    unexpected = sorted(given - allowed)
    if unexpected:
        return f"{analyzer} does not take {', '.join(unexpected)}"
    if analyzer == "CountDistinct" and args.where:
        return "CountDistinct does not take where"
    return None


def _parse_entry(document: YamlDocument, loc: Location, index: int, entry: Any) -> AnomalyCheck:
    here: Location = (*loc, index)
    label = f"anomalies entry {index + 1}"
    if not isinstance(entry, dict) or len(entry) != 1:
        raise SuiteError(
            f"{document.where(here)}: {label}: write each entry as a one-key mapping, such as "
            "`- Size: {strategy: RelativeRateOfChange, maxRateDecrease: 0.8}`"
        )
    ((analyzer, raw),) = entry.items()
    here = (*here, analyzer)
    if analyzer not in ANALYZERS:
        raise SuiteError(
            f"{document.where(here)}: {label}: unknown analyzer {analyzer!r}; "
            f"{_suggest(str(analyzer), list(ANALYZERS))}known analyzers: {', '.join(ANALYZERS)}"
        )
    if not isinstance(raw, dict):
        raise SuiteError(
            f"{document.where(here)}: {label} ({analyzer}): give a mapping with a strategy, "
            f"such as `{analyzer}: {{strategy: OnlineNormal}}`"
        )
    try:
        head = _EntryDoc.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError(
            f"{label} ({analyzer}):\n" + describe_validation_error(document, exc, here)
        ) from None
    strategy_type = STRATEGIES.get(head.strategy)
    if strategy_type is None:
        raise SuiteError(
            f"{document.where((*here, 'strategy'))}: {label} ({analyzer}): unknown strategy "
            f"{head.strategy!r}; {_suggest(head.strategy, list(STRATEGIES))}"
            f"known strategies: {', '.join(STRATEGIES)}"
        )
    analyzer_fields = set(_AnalyzerArgs.model_fields)
    rest = {k: v for k, v in raw.items() if k not in {"strategy", "level"}}
    analyzer_raw = {k: v for k, v in rest.items() if k in analyzer_fields}
    strategy_raw = {k: v for k, v in rest.items() if k not in analyzer_fields}
    if isinstance(analyzer_raw.get("columns"), str):
        analyzer_raw["columns"] = [analyzer_raw["columns"]]
    try:
        args = _AnalyzerArgs.model_validate(analyzer_raw)
        strategy = strategy_type.model_validate(strategy_raw)
    except ValidationError as exc:
        raise SuiteError(
            f"{label} ({analyzer}, {head.strategy}):\n"
            + describe_validation_error(document, exc, here)
        ) from None
    problem = _check_analyzer_args(str(analyzer), args)
    if problem:
        raise SuiteError(f"{document.where(here)}: {label} ({analyzer}): {problem}")
    return AnomalyCheck(
        index, str(analyzer), args, head.strategy, strategy, head.level, document.line_of(here)
    )


def parse_anomalies(
    document: YamlDocument, loc: Location = ("anomalies",)
) -> tuple[AnomalyCheck, ...]:
    """Validate the `anomalies:` list of a suite document (empty when there is none).

    Raises:
        SuiteError: `file:line` and the entry for an unknown analyzer or strategy, a missing or
            unknown parameter.
    """
    entries = _document_at(document, loc)
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise SuiteError(f"{document.where(loc)}: anomalies must be a list of entries")
    return tuple(_parse_entry(document, loc, i, entry) for i, entry in enumerate(entries))


# --------------------------------------------------------------------------------------------
# Deequ objects


def _jvm(spark: SparkSession) -> Any:
    return spark.sparkContext._jvm


def _pydeequ_analyzer(entry: AnomalyCheck) -> Any:
    from pydeequ import analyzers as A

    a, where = entry.args, entry.args.where
    columns = list(entry.columns)
    name = entry.analyzer
    if name == "Size":
        return A.Size(where)
    if name == "ApproxQuantile":
        return A.ApproxQuantile(a.column, a.quantile, where=where)
    if name == "PatternMatch":
        return A.PatternMatch(a.column, a.pattern, where=where)
    if name == "Compliance":
        return A.Compliance(a.name, a.predicate, where)
    if name == "Correlation":
        return A.Correlation(columns[0], columns[1], where)
    if name == "CountDistinct":
        return A.CountDistinct(columns)
    if name in {"Uniqueness", "Distinctness", "UniqueValueRatio"}:
        return getattr(A, name)(columns, where)
    return getattr(A, name)(a.column, where)


def _jvm_analyzer(spark: SparkSession, entry: AnomalyCheck) -> Any:
    return _pydeequ_analyzer(entry)._set_jvm(_jvm(spark))._analyzer_jvm


def anomaly_analyzers(spark: SparkSession, entries: Sequence[AnomalyCheck]) -> list[Any]:
    """The JVM Deequ analyzers whose metrics the entries need this run (one per entry, in order).

    Compute them with the run's other metrics and save them in the metrics repository with the
    run's key (tags `suite`, `run_id`), so that later runs find them in the history.
    """
    return [_jvm_analyzer(spark, entry) for entry in entries]


def _double(j_metric_option: Any) -> float | None:
    if j_metric_option is None or not j_metric_option.isDefined():
        return None
    value = j_metric_option.get().value()
    if not value.isSuccess():
        return None
    try:
        number = float(value.get())
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def current_metrics(
    spark: SparkSession, entries: Sequence[AnomalyCheck], analyzer_context: Any
) -> dict[AnalyzerKey, float]:
    """The entries' metrics read from a JVM `AnalyzerContext` (as a run computed them)."""
    metric_map = analyzer_context.metricMap()
    found = {}
    for entry, analyzer in zip(entries, anomaly_analyzers(spark, entries), strict=True):
        value = _double(metric_map.get(analyzer))
        if value is not None:
            found[entry.key] = value
    return found


def compute_current_metrics(
    spark: SparkSession,
    df: DataFrame,
    entries: Sequence[AnomalyCheck],
    *,
    repository: Path | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[AnalyzerKey, float]:
    """Compute the entries' metrics over `df` with one Deequ AnalysisRunner pass.

    With `repository`, the metrics are also appended there under a key of now and `tags`.
    """
    from checks.deequ_run import ensure_deequ, metrics_repository, result_key

    ensure_deequ(spark)
    if not entries:
        return {}
    jvm = _jvm(spark)
    builder = jvm.com.amazon.deequ.analyzers.runners.AnalysisRunBuilder(df._jdf)
    unique = {str(a.toString()): a for a in anomaly_analyzers(spark, entries)}
    for analyzer in unique.values():  # Deequ refuses the same analyzer twice
        builder = builder.addAnalyzer(analyzer)
    if repository is not None:
        repo = metrics_repository(spark, repository)
        builder = builder.useRepository(repo.repository).saveOrAppendResult(
            result_key(spark, dict(tags or {})).resultKey
        )
    return current_metrics(spark, entries, builder.run())


def _jvm_strategy(spark: SparkSession, entry: AnomalyCheck) -> Any:
    from pydeequ import anomaly_detection as D

    jvm, s = _jvm(spark), entry.strategy
    if isinstance(s, RelativeRateOfChange):
        strategy: Any = D.RelativeRateOfChangeStrategy(
            s.maxRateDecrease, s.maxRateIncrease, s.order
        )
    elif isinstance(s, AbsoluteChange):
        strategy = D.AbsoluteChangeStrategy(s.maxRateDecrease, s.maxRateIncrease, s.order)
    elif isinstance(s, SimpleThresholds):
        strategy = D.SimpleThresholdStrategy(s.lowerBound, s.upperBound)
    elif isinstance(s, OnlineNormal):
        strategy = D.OnlineNormalStrategy(
            s.lowerDeviationFactor,
            s.upperDeviationFactor,
            s.ignoreStartPercentage,
            s.ignoreAnomalies,
        )
    elif isinstance(s, BatchNormal):
        strategy = D.BatchNormalStrategy(
            s.lowerDeviationFactor, s.upperDeviationFactor, s.includeInterval
        )
    else:
        assert isinstance(s, HoltWinters)
        return jvm.com.amazon.deequ.anomalydetection.seasonal.HoltWinters(s.periodicity)
    return strategy._set_jvm(jvm)._anomaly_jvm


# --------------------------------------------------------------------------------------------
# History and evaluation


@dataclass(frozen=True)
class HistoryPoint:
    """One earlier run's value of a metric."""

    time: int  # milliseconds since the epoch (Deequ's ResultKey.dataSetDate)
    value: float
    run_id: str | None = None


def load_metric_history(
    spark: SparkSession,
    repository: Path,
    suite_name: str,
    entry: AnomalyCheck,
    *,
    exclude_run_id: str | None = None,
    before: int | None = None,
    tags: Mapping[str, str] | None = None,
    exclude_tags: Mapping[str, str] | None = None,
) -> list[HistoryPoint]:
    """The suite's earlier values of the entry's metric in the repository, oldest first.

    Only runs carrying every one of `tags` besides the suite's (a stream's `window: batch`
    and `query_id`) count; a run carrying all of `exclude_tags` is left out. Without a
    `window` among `tags`, a stream's entries are left out: a table's history is its runs.
    """
    from pydeequ.scala_utils import to_scala_map, to_scala_seq

    from checks.deequ_run import WINDOW_TAG, history_files, history_repository, is_stream_entry

    if not history_files(repository):
        return []
    jvm = _jvm(spark)
    analyzer = _jvm_analyzer(spark, entry)
    loader = (
        history_repository(spark, repository)
        .repository.load()
        .withTagValues(to_scala_map(spark, {**(tags or {}), "suite": suite_name}))
        .forAnalyzers(to_scala_seq(jvm, [analyzer]))
    )
    results = jvm.scala.collection.JavaConverters.seqAsJavaList(loader.get())
    points = []
    for result in results:
        key = result.resultKey()
        saved = jvm.scala.collection.JavaConverters.mapAsJavaMap(key.tags())
        run_id = saved.get("run_id")
        moment = int(key.dataSetDate())
        excluded = bool(exclude_tags) and all(
            saved.get(k) == v for k, v in (exclude_tags or {}).items()
        )
        if (
            excluded
            or (WINDOW_TAG not in (tags or {}) and is_stream_entry(saved))
            or (exclude_run_id is not None and run_id == exclude_run_id)
            or (before is not None and moment >= before)
        ):
            continue
        value = _double(result.analyzerContext().metricMap().get(analyzer))
        if value is not None:
            points.append(HistoryPoint(moment, value, None if run_id is None else str(run_id)))
    return sorted(points, key=lambda p: p.time)


@dataclass(frozen=True)
class Bounds:
    """Where the strategy accepts the new value (None: no bound on that side)."""

    lower: float | None
    upper: float | None

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready (infinite bounds as null)."""
        finite = [
            v if v is not None and math.isfinite(v) else None for v in (self.lower, self.upper)
        ]
        return {"lower": finite[0], "upper": finite[1]}


def _limit(value: float | None, default: float) -> float:
    return default if value is None else value


def strategy_bounds(strategy: _Strategy, history: Sequence[float], value: float) -> Bounds | None:
    """The strategy's accepted range for `value` after `history`, with Deequ's formulas.

    None when the strategy has no bounds to show (Holt-Winters, too short a history).
    """
    inf = math.inf
    if isinstance(strategy, SimpleThresholds):
        return Bounds(strategy.lowerBound, strategy.upperBound)
    if isinstance(strategy, RelativeRateOfChange):
        if len(history) < strategy.order:
            return None
        base = history[-strategy.order]
        if base == 0:
            return None
        low = _limit(strategy.maxRateDecrease, -inf) * base
        high = _limit(strategy.maxRateIncrease, inf) * base
        return Bounds(*sorted((low, high)))
    if isinstance(strategy, AbsoluteChange):
        k = strategy.order
        if len(history) < k:
            return None
        # the k-th difference ending at the new value is value + offset
        offset = sum((-1) ** i * math.comb(k, i) * history[-i] for i in range(1, k + 1))
        return Bounds(
            _limit(strategy.maxRateDecrease, -inf) - offset,
            _limit(strategy.maxRateIncrease, inf) - offset,
        )
    if isinstance(strategy, BatchNormal):
        series = [*history, value] if strategy.includeInterval else list(history)
        if len(series) < 2:
            return None
        mean, deviation = statistics.fmean(series), statistics.stdev(series)
        return Bounds(
            mean - _limit(strategy.lowerDeviationFactor, inf) * deviation,
            mean + _limit(strategy.upperDeviationFactor, inf) * deviation,
        )
    if isinstance(strategy, OnlineNormal):
        mean = variance_sum = 0.0
        for index, current in enumerate([*history, value]):
            last_mean = mean
            mean = current if index == 0 else last_mean + (current - last_mean) / (index + 1)
            variance_sum += (current - last_mean) * (current - mean)
        deviation = math.sqrt(variance_sum / (len(history) + 1))
        return Bounds(
            mean - _limit(strategy.lowerDeviationFactor, inf) * deviation,
            mean + _limit(strategy.upperDeviationFactor, inf) * deviation,
        )
    return None


@dataclass(frozen=True)
class AnomalyResult:
    """Deequ's verdict on one anomaly check, with what it was compared with."""

    entry: AnomalyCheck
    status: str  # "success" or "failure"
    metric: float | None
    history: tuple[HistoryPoint, ...]
    bounds: Bounds | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The report.json entry."""
        return {
            "analyzer": self.entry.analyzer,
            "column": ",".join(self.entry.columns) or None,
            "label": self.entry.label,
            "strategy": self.entry.strategy_name,
            "parameters": self.entry.strategy.model_dump(),
            "level": self.entry.level.value,
            "status": self.status,
            "metric": self.metric,
            "history": [{"time": p.time, "value": p.value} for p in self.history],
            "bounds": self.bounds.as_dict() if self.bounds else None,
            "message": self.message,
        }


def worsened_status(status: str, anomalies: Iterable[AnomalyResult]) -> str:
    """`status` after the anomaly checks.

    A failed error-level check makes it `failure`; a failed warning-level one makes a `success`
    a `warning`.
    """
    anomalies = tuple(anomalies)
    if any_failed(anomalies, Level.ERROR):
        return "failure"
    if any_failed(anomalies, Level.WARNING) and status == "success":
        return "warning"
    return status


def any_failed(anomalies: Iterable[AnomalyResult], level: Level) -> bool:
    """Whether an anomaly check of `level` failed."""
    return any(a.status == "failure" and a.entry.level is level for a in anomalies)


def _detect(
    spark: SparkSession,
    entry: AnomalyCheck,
    history: Sequence[HistoryPoint],
    now: int,
    value: float,
) -> tuple[bool, str | None]:
    from pydeequ.scala_utils import to_scala_seq

    jvm = _jvm(spark)
    detection = jvm.com.amazon.deequ.anomalydetection
    points = [detection.DataPoint(p.time, jvm.scala.Option.apply(p.value)) for p in history]
    new_point = detection.DataPoint(now, jvm.scala.Option.apply(value))
    detector = detection.AnomalyDetector(_jvm_strategy(spark, entry))
    anomalies = detector.isNewPointAnomalous(to_scala_seq(jvm, points), new_point).anomalies()
    if anomalies.size() == 0:
        return False, None
    detail = anomalies.apply(0)._2().detail()
    return True, str(detail.get()) if detail.isDefined() else None


def _judge(
    spark: SparkSession,
    entry: AnomalyCheck,
    history: list[HistoryPoint],
    value: float | None,
    now: int,
    suite_name: str,
) -> AnomalyResult:
    label = entry.label
    if value is None:
        return AnomalyResult(entry, "failure", None, tuple(history), None,
                             f"{label}: the metric could not be computed this run")  # fmt: skip
    if not history:
        return AnomalyResult(
            entry, "success", value, (), None,
            f"{label} = {value:.6g}: no earlier run of suite {suite_name!r} has this metric; "
            "nothing to compare with yet (passes)",
        )  # fmt: skip
    strategy = entry.strategy
    if isinstance(strategy, HoltWinters) and len(history) < 2 * strategy.periodicity:
        return AnomalyResult(
            entry, "success", value, tuple(history), None,
            f"{label} = {value:.6g}: HoltWinters needs {2 * strategy.periodicity} earlier runs "
            f"(two {strategy.seasonality.lower()} seasons), has {len(history)}; not judged yet "
            "(passes)",
        )  # fmt: skip
    values = [p.value for p in history]
    bounds = strategy_bounds(strategy, values, value)
    anomalous, detail = _detect(spark, entry, history, max(now, history[-1].time + 1), value)
    where = f" [{bounds.lower:.6g}, {bounds.upper:.6g}]" if bounds else ""
    if anomalous:
        message = f"{label} = {value:.6g} is an anomaly ({entry.strategy_name}{where}"
        message += f"; {detail})" if detail else ")"
    else:
        message = f"{label} = {value:.6g} is within {entry.strategy_name}'s bounds{where}"
    message += f" against {len(history)} earlier run(s)"
    return AnomalyResult(
        entry, "failure" if anomalous else "success", value, tuple(history), bounds, message
    )


def evaluate_anomalies(
    spark: SparkSession,
    entries: Sequence[AnomalyCheck],
    current: Mapping[AnalyzerKey, float],
    repository: Path,
    suite_name: str,
    *,
    run_id: str | None = None,
    now: int | None = None,
    tags: Mapping[str, str] | None = None,
    exclude_tags: Mapping[str, str] | None = None,
    histories: Mapping[AnalyzerKey, Sequence[HistoryPoint]] | None = None,
) -> list[AnomalyResult]:
    """Judge each entry's current metric against the suite's history with Deequ's detector.

    Args:
        spark: the session (Deequ's classes).
        entries: the suite's anomaly checks (`parse_anomalies`).
        current: this run's metrics by `AnomalyCheck.key` (`current_metrics`,
            `compute_current_metrics`).
        repository: the metrics repository path (its legacy file and run files).
        suite_name: the `suite` tag of the runs to compare with.
        run_id: this run's `run_id` tag, left out of the history when the run's metrics were
            saved already.
        now: this run's time in ms (default: now); only earlier points are history.
        tags: further tags the history's runs must carry (a stream: `window: batch`, its
            `query_id`).
        exclude_tags: a run carrying all of these is no history (a stream: this batch's id).
        histories: the earlier points of each entry's metric (`AnomalyCheck.key`), when the
            caller keeps them (a stream, batch after batch); else they are read from
            `repository` (`load_metric_history`).
    """
    moment = now if now is not None else int(time.time() * 1000)
    results = []
    for entry in entries:
        if histories is not None:
            history = [p for p in histories.get(entry.key, ()) if p.time < moment]
        else:
            history = load_metric_history(
                spark, repository, suite_name, entry, exclude_run_id=run_id, before=moment,
                tags=tags, exclude_tags=exclude_tags,
            )  # fmt: skip
        results.append(_judge(spark, entry, history, current.get(entry.key), moment, suite_name))
    return results
