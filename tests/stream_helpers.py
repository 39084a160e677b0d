"""What the stream tests share: suites, landing files, running a stream, reading its outputs.

Used by the tests/test_stream*.py modules (imported as `stream_helpers`, like `model_fixtures`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_jobs.cli import main

# An error-level check of three row rules over (id, amount) rows.
ORDERS_SUITE = """\
suite: orders
checks:
  - name: rows
    level: error
    constraints:
      - isComplete: id
      - isUnique: id
      - isNonNegative: amount
"""
# How long a test waits for a running stream to reach a point (a batch committed, a report).
WAIT_SECONDS = 300


def land_frame(folder: Path, index: int, frame: pd.DataFrame) -> Path:
    """Write `frame` as one parquet file in `folder`, its mtime ordering it after the others."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{index:03d}.parquet"
    frame.to_parquet(path, index=False)
    os.utime(path, (1_700_000_000 + index * 10, 1_700_000_000 + index * 10))
    return path


def land(folder: Path, index: int, rows: list[tuple[int | None, float | None]]) -> Path:
    """One parquet file of (id, amount) rows in the source folder (see `land_frame`)."""
    frame = pd.DataFrame(rows, columns=["id", "amount"]).astype(
        {"id": "Int64", "amount": "float64"}
    )
    return land_frame(folder, index, frame)


def stream(suite: Path, source: str, output: Path, checkpoint: Path, *extra: str) -> int:
    """`lakegate stream validate` in-process, one file per batch, without progress lines."""
    return main(
        [
            "stream", "validate", str(suite), "--source", source, "--output", str(output),
            "--checkpoint", str(checkpoint), "--option", "maxFilesPerTrigger=1", "--quiet",
            *extra,
        ]
    )  # fmt: skip


def delta(spark: SparkSession, path: Path) -> DataFrame:
    """The Delta table at `path`."""
    return spark.read.format("delta").load(str(path))


def report(output: Path) -> dict[str, Any]:
    """OUT/report.json."""
    found: dict[str, Any] = json.loads((output / "report.json").read_text())
    return found


def free_port() -> int:
    """A port nothing listens on, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> str:
    """The Prometheus exposition served on 127.0.0.1:`port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def sample(text: str, name: str, query: str) -> float:
    """The value of the one series of `name` labelled with `query` in an exposition."""
    prefix = f'{name}{{query="{query}"}} '
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, f"{name} not in the scrape:\n{text}"
    return values[0]


def wait_for(
    condition: Callable[[], bool], what: str, ended: threading.Event | None = None
) -> None:
    """Poll `condition` until it holds; fail after `WAIT_SECONDS` or once `ended` is set."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline or (ended is not None and ended.is_set()):
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def html_table(html: str, table_id: str) -> str:
    """The HTML of report.html's table `table_id`, up to its closing tag."""
    start = html.index(f'<table id="{table_id}">')
    return html[start : html.index("</table>", start)]


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of report.html's table `table_id` (tags stripped)."""
    rows = html_table(html, table_id).split("<tr>")[2:]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in row.split("</td>")[:-1]]
            for row in rows]  # fmt: skip
