"""What people read at the end of a job, and the progress lines before it."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any


class Progress:
    """Concise progress lines on stderr: `[2/4] computing metrics ... 3.1s`."""

    def __init__(self, steps: int, *, quiet: bool = False) -> None:
        self.steps = steps
        self.quiet = quiet
        self._step = 0
        self._started = time.monotonic()
        self._step_started = self._started

    def step(self, text: str) -> None:
        """Announce the next step."""
        self._finish_line()
        self._step += 1
        self._step_started = time.monotonic()
        if not self.quiet:
            print(f"[{self._step}/{self.steps}] {text} ...", end="", file=sys.stderr, flush=True)

    def _finish_line(self) -> None:
        if self._step and not self.quiet:
            print(f" {time.monotonic() - self._step_started:.1f}s", file=sys.stderr, flush=True)

    def done(self) -> float:
        """End the last step; return the total seconds."""
        self._finish_line()
        self._step = 0
        return time.monotonic() - self._started


def _metric(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def validation_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of a validation report."""
    lines = [f"Suite {report['suite']} on {report['input']}: {report['status'].upper()}"]
    width = max((len(c["constraint"]) for c in report["constraints"]), default=10)
    for c in report["constraints"]:
        mark = "PASS" if c["status"] == "success" else ("FAIL" if c["level"] == "error" else "WARN")
        lines.append(
            f"  {mark}  {c['constraint']:<{width}}  value {_metric(c['metric']):>8}  "
            f"expected {c['expectation']}"
        )
    for a in report.get("anomalies", []):
        mark = "PASS" if a["status"] == "success" else ("FAIL" if a["level"] == "error" else "WARN")
        lines.append(f"  {mark}  anomaly: {a['message']}")
    counts = report["counts"]
    lines.append(
        f"Rows: {counts['rows_in']} in, {counts['rows_valid']} valid, "
        f"{counts['rows_quarantined']} quarantined"
    )
    for constraint, n in report.get("quarantine_reasons", {}).items():
        lines.append(f"  {n} row(s) broke {constraint}")
    outputs = report["outputs"]
    lines.append(f"Valid rows:       {outputs['valid']}")
    lines.append(f"Quarantined rows: {outputs['quarantine']}")
    lines.append(f"Report:           {outputs['report']}")
    if outputs.get("html_report"):
        lines.append(f"HTML report:      {outputs['html_report']}")
    if outputs.get("metrics_repository"):
        lines.append(f"Metrics history:  {outputs['metrics_repository']}")
    return "\n".join(lines)
