"""`lakegate stream validate` from a Kafka topic: valid + quarantine hold every record once."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_broker import kafka_broker, produce
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

# Fast tier: every test here took 5 s or more, or shares a fixture that does (7 Dec 2026).
pytestmark = pytest.mark.slow

__all__ = ["kafka_broker"]  # the module-scoped fixture, imported for this module's tests


ORDERS_SUITE = """\
suite: orders
schema: {id: bigint, amount: double}
checks:
  - name: rows
    level: error
    constraints:
      - isComplete: id
      - isNonNegative: amount
"""
# (value, id, amount, the malformed-line message when it does not parse); a second run gets
# the last two after a restart on the same checkpoint.
ORDERS: list[tuple[str, int | None, float | None, str | None]] = [
    ('{"id": 1, "amount": 10.0}', 1, 10.0, None),
    ('{"id": 2, "amount": -5.0}', 2, -5.0, None),
    ("not json", None, None, "malformed line: not json"),
    ('{"id": "x", "amount": 1.0}', None, 1.0, 'malformed line: {"id": "x", "amount": 1.0}'),
    ("[1]", None, None, "malformed line: [1]"),
    ('{"id": 3, "amount": 7.5}', 3, 7.5, None),
    ('{"id": 4, "amount": 2.5}', 4, 2.5, None),
    ("{oops", None, None, "malformed line: {oops"),
]
FIRST_RUN = 6


def _stream_validate(suite: Path, bootstrap: str, root: Path) -> int:
    from spark_jobs.cli import main

    return main(
        [
            "stream", "validate", str(suite), "--source", "kafka:orders", "--output",
            str(root / "out"), "--checkpoint", str(root / "checkpoint"), "--kafka-bootstrap",
            bootstrap, "--quiet",
        ]
    )  # fmt: skip


@pytest.mark.kafka
def test_stream_validate_from_kafka_holds_every_record_once_and_quarantines_malformed_ones(
    spark: SparkSession, kafka_broker: str, tmp_path: Path
) -> None:
    suite = tmp_path / "orders.yaml"
    suite.write_text(ORDERS_SUITE)
    produce(spark, kafka_broker, "orders", [value for value, *_ in ORDERS[:FIRST_RUN]])
    first = _stream_validate(suite, kafka_broker, tmp_path)
    produce(spark, kafka_broker, "orders", [value for value, *_ in ORDERS[FIRST_RUN:]])
    second = _stream_validate(suite, kafka_broker, tmp_path)
    assert (first, second) == (1, 1)  # the negative amount and the null ids fail `rows`

    valid = spark.read.format("delta").load(str(tmp_path / "out" / "valid"))
    quarantine = spark.read.format("delta").load(str(tmp_path / "out" / "quarantine"))
    malformed = (
        "filter(transform(_lakegate_errors, e -> e.message), m -> m like 'malformed line: %')"
    )
    assertDataFrameEqual(
        valid,
        spark.createDataFrame([(1, 10.0), (3, 7.5), (4, 2.5)], "id long, amount double"),
    )
    assertDataFrameEqual(
        quarantine.selectExpr("id", "amount", f"element_at({malformed}, 1) as malformed"),
        spark.createDataFrame(
            [(i, a, m) for _, i, a, m in ORDERS if m is not None or i == 2],
            "id long, amount double, malformed string",
        ),
    )
