"""report.html: one validation run as a self-contained page (no network at view time).

`render_report_html(report, history, samples)` fills `templates/report.html.j2` (Jinja2, with
autoescaping) from validate's report.json dict, the suite's rows of the metrics repository
(`history_records`) and a few quarantined rows per reason. Each metric's history is an inline SVG
drawn by matplotlib: this run is the red point; where the report has an anomaly entry for the
metric, the strategy's bounds are a shaded band.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from checks.suite import Suite

TEMPLATE = "report.html.j2"
SAMPLE_ROWS = 5
MetricKey = tuple[str, str, str]  # (entity, instance, name), as Deequ's repository keys a metric


@dataclass(frozen=True)
class Chart:
    """One metric's history, ready for the template."""

    title: str
    svg: Markup


def history_records(
    spark: SparkSession, repository_path: Path, suite: Suite | str
) -> list[dict[str, Any]]:
    """The suite's rows of the Deequ metrics repository, oldest first, as plain dicts.

    Each row has `dataset_date` (ms), `entity`, `instance`, `name`, `value` and the run's tags
    (`suite`, `run_id`); a stream's entries (tagged `window`) are left out. An absent repository
    is an empty history.
    """
    from checks.deequ_run import history_files, is_stream_entry, load_history

    if not history_files(Path(repository_path)):
        return []
    name = suite if isinstance(suite, str) else suite.name
    rows = [row.asDict() for row in load_history(spark, Path(repository_path), name).collect()]
    return sorted((r for r in rows if not is_stream_entry(r)), key=lambda r: r["dataset_date"])


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def metric_text(value: Any) -> str:
    """A metric for people: integers without a fraction, others to 4 significant digits."""
    number = _number(value)
    if number is None:
        return "-"
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.4g}"


def _when(milliseconds: Any) -> datetime:
    return datetime.fromtimestamp(int(milliseconds) / 1000, tz=UTC)


def _finite(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None


def _date_number(when: datetime) -> float:
    """Matplotlib's date number (days since its epoch) of a time."""
    import matplotlib.dates as mdates

    return float(mdates.date2num(when))  # type: ignore[no-untyped-call]


def _chart_svg(
    points: Sequence[tuple[datetime, float]],
    current: tuple[datetime, float] | None,
    bounds: tuple[float | None, float | None] | None,
    salt: str,
) -> Markup:
    """A small line chart as inline SVG (text kept as text, ids unique to this chart)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": salt, "font.size": 8, "axes.grid": True}
    ):
        figure, axes = plt.subplots(figsize=(4.2, 2.1), dpi=100)
        try:
            if points:
                xs = [_date_number(when) for when, _ in points]
                axes.plot(
                    xs,
                    [value for _, value in points],
                    marker="o",
                    markersize=3,
                    color="#0969da",
                    linewidth=1.2,
                )
            if bounds is not None:
                values = [v for _, v in points] + ([current[1]] if current else [])
                low, high = bounds
                span = (max(values) - min(values)) if values else 1.0
                pad = span * 0.5 or 1.0
                low_drawn = low if low is not None else min(values, default=0.0) - pad
                high_drawn = high if high is not None else max(values, default=0.0) + pad
                axes.axhspan(low_drawn, high_drawn, color="#1a7f37", alpha=0.13, label="bounds")
                for edge in (low, high):
                    if edge is not None:
                        axes.axhline(edge, color="#1a7f37", linewidth=0.8, linestyle="--")
            if current is not None:
                axes.plot(
                    [_date_number(current[0])],
                    [current[1]],
                    marker="o",
                    markersize=7,
                    color="#cf222e",
                )
            locator = mdates.AutoDateLocator(maxticks=5)  # type: ignore[no-untyped-call]
            axes.xaxis.set_major_locator(locator)
            formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
            axes.xaxis.set_major_formatter(formatter)
            axes.margins(x=0.08, y=0.2)
            moments = {_date_number(when) for when, _ in points}
            if current is not None:
                moments.add(_date_number(current[0]))
            if len(moments) == 1:  # one run: a day either side, so the date axis has a range
                (only,) = moments
                axes.set_xlim(only - 1, only + 1)
            figure.subplots_adjust(left=0.17, right=0.97, top=0.94, bottom=0.17)
            buffer = io.StringIO()
            with warnings.catch_warnings():
                # Runs a few minutes or hours apart fit none of its tick intervals; its fallback
                # (the largest) reads well, so the job's output is spared the warning.
                warnings.filterwarnings("ignore", message="AutoDateLocator was unable")
                figure.savefig(buffer, format="svg")
        finally:
            plt.close(figure)
    svg = buffer.getvalue()
    return Markup(svg[svg.index("<svg") :])  # matplotlib's SVG: numbers, dates


def _anomaly_key(anomaly: Mapping[str, Any]) -> tuple[str, str]:
    return str(anomaly.get("analyzer")), str(anomaly.get("column") or "*")


@dataclass(frozen=True)
class HistoryCharts:
    """The report's charts, and how many runs the history holds."""

    charts: list[Chart]
    runs: int


def history_charts(
    report: Mapping[str, Any], history: Sequence[Mapping[str, Any]]
) -> HistoryCharts:
    """One chart per metric of the history, then one per anomaly entry with no such metric.

    Of `report` only `run_id`, `anomalies` and `finished_at` are read, so the charts can be
    drawn before the rest of the report is known.
    """
    run_id = report.get("run_id")
    series: dict[MetricKey, list[Mapping[str, Any]]] = defaultdict(list)
    for row in history:
        if _number(row.get("value")) is not None:
            series[(str(row["entity"]), str(row["instance"]), str(row["name"]))].append(row)
    anomalies = {_anomaly_key(a): a for a in report.get("anomalies") or []}
    charted: set[tuple[str, str]] = set()
    charts = []
    for index, ((entity, instance, name), rows) in enumerate(sorted(series.items())):
        rows = sorted(rows, key=lambda r: r["dataset_date"])
        earlier = [(_when(r["dataset_date"]), float(r["value"])) for r in rows]
        current = next(
            (
                (_when(r["dataset_date"]), float(r["value"]))
                for r in rows
                if r.get("run_id") == run_id
            ),
            None,
        )
        anomaly = anomalies.get((name, instance))
        bounds = None
        if anomaly is not None:
            charted.add((name, instance))
            if anomaly.get("bounds"):
                bounds = (
                    _finite(anomaly["bounds"].get("lower")),
                    _finite(anomaly["bounds"].get("upper")),
                )
        points = earlier  # the line runs through this run too; its point is drawn over it
        title = f"{name}({instance})" if entity != "Dataset" else name
        charts.append(Chart(title, _chart_svg(points, current, bounds, f"m{index}")))
    for index, (key, anomaly) in enumerate(sorted(anomalies.items())):
        if key in charted:
            continue
        points = [
            (_when(p["time"]), float(p["value"]))
            for p in anomaly.get("history") or []
            if _number(p.get("value")) is not None
        ]
        metric = _number(anomaly.get("metric"))
        finished = report.get("finished_at")
        when = datetime.fromisoformat(finished) if finished else datetime.now(UTC)
        current = (when, metric) if metric is not None else None
        if current is not None:
            points.append(current)
        b = anomaly.get("bounds")
        bounds = (_finite(b.get("lower")), _finite(b.get("upper"))) if b else None
        title = f"{key[0]}({key[1]})" if key[1] != "*" else key[0]
        charts.append(Chart(title, _chart_svg(points, current, bounds, f"a{index}")))
    runs = len({row.get("run_id") or row.get("dataset_date") for row in history})
    return HistoryCharts(charts, runs)


def _constraint_mark(constraint: Mapping[str, Any]) -> str:
    if constraint.get("status") == "success":
        return "PASS"
    return "FAIL" if constraint.get("level") == "error" else "WARN"


def _anomaly_mark(anomaly: Mapping[str, Any]) -> str:
    status = str(anomaly.get("status", ""))
    if status in {"success", "pass", "passed", "no_history"}:
        return "PASS"
    return "FAIL" if anomaly.get("level", "error") == "error" else "WARN"


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "; ".join(_cell(v) for v in value)
    if isinstance(value, Mapping):
        return str(value.get("message") or dict(value))
    return str(value)


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("spark_jobs.services", "templates"),  # a zip (--py-files) too
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        metric=metric_text,
        constraint_mark=_constraint_mark,
        anomaly_mark=_anomaly_mark,
        columns=_columns,
        cell=_cell,
    )
    return environment


def render_report_html(
    report: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    samples: Mapping[str, list[dict[str, Any]]],
    *,
    charts: HistoryCharts | None = None,
) -> str:
    """The run's report as one self-contained HTML page.

    Args:
        report: validate's report.json dict (status, constraints, counts, quarantine reasons,
            optional `anomalies`).
        history: the suite's rows of the metrics repository (`history_records`).
        samples: quarantine reason (constraint id) -> a few quarantined rows as dicts.
        charts: `history_charts(report, history)`, when drawn beforehand.
    """
    drawn = charts or history_charts(report, history)
    trimmed = {reason: list(rows)[:SAMPLE_ROWS] for reason, rows in samples.items()}
    template = _environment().get_template(TEMPLATE)
    return template.render(
        report=report,
        anomalies=list(report.get("anomalies") or []),
        samples=trimmed,
        charts=drawn.charts,
        runs=drawn.runs,
    )


def render_stream_report_html(
    report: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] = (),
    samples: Mapping[str, list[dict[str, Any]]] | None = None,
) -> str:
    """A stream's report.json as report.html: the running total and its per-batch history.

    `report` is `stream validate`'s or `stream predict`'s report dict; its `batch_history`
    (`stream_metrics.BatchRecord` dicts, oldest first) becomes the Batches table, its `windows`
    (event-time windows, `stream_windows`) the windows' tables (`stream_windows_view`). Fields a
    table's report has and a stream's lacks are filled from the stream's own (`source`,
    `query_id`, `updated_at`, the batches' durations).
    """
    batches = list(report.get("batch_history") or [])
    view: dict[str, Any] = {
        "suite": report.get("model_uri") or "stream",
        "suite_file": None,
        "input": report.get("source"),
        "run_id": report.get("query_id"),
        "started_at": report.get("updated_at"),
        "duration_seconds": sum(float(b.get("duration_seconds") or 0) for b in batches),
        "exit_code": 0,
        "status": "success",
        "constraints": [],
        "quarantine_reasons": {},
        **report,
        "batch_history": batches,
        "windows": stream_windows_view(report.get("windows")),
    }
    return render_report_html(view, history, samples or {})


def stream_windows_view(windows: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """report.json's `windows` as report.html shows them: closed ones newest first, durations.

    None (no section) when the stream has no event-time windows.
    """
    if not windows:
        return None
    return {
        **windows,
        "size": duration_text(windows.get("size_seconds")),
        "delay": duration_text(windows.get("watermark_delay_seconds")),
        "closed": list(reversed(windows.get("closed") or [])),
        "open": list(windows.get("open") or []),
    }


def duration_text(seconds: Any) -> str:
    """Seconds for people, in the largest unit that divides them: `1 h`, `10 min`, `1.5 s`."""
    number = _number(seconds)
    if number is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if number >= size and number % size == 0:
            return f"{int(number // size)} {unit}"
    return f"{number:g} s"
