"""The model input gate: derived from training data, it stops unseen categories and outliers."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from checks.gate import ERRORS_COLUMN
from checks.input_gate import apply_input_gate, derive_input_suite, suite_from_data
from checks.suite import SuiteError

TRAINING = [
    (1, "free", 0.0, 10),
    (2, "pro", 10.0, 20),
    (3, "team", 5.0, None),
    (4, "free", 2.5, 15),
]
SCHEMA = "user_id int, segment string, feature_1 double, sessions int"


def test_derived_suite_records_vocabulary_ranges_nulls_and_types(spark: SparkSession) -> None:
    data = derive_input_suite(
        spark.createDataFrame(TRAINING, SCHEMA), ["segment", "feature_1", "sessions"], name="g"
    )
    assert data["schema"] == {"segment": "string", "feature_1": "double", "sessions": "int"}
    gate = data["checks"][0]["constraints"]
    assert {"isContainedIn": {"column": "segment", "values": ["free", "pro", "team"]}} in gate
    assert {"isInRange": {"column": "feature_1", "min": -1.0, "max": 11.0}} in gate
    assert {"isComplete": "feature_1"} in gate
    assert {"isComplete": "sessions"} not in gate  # training had a missing value there
    assert data["checks"][1]["constraints"] == [
        {"hasCompleteness": {"column": "sessions", "min": 0.7}}
    ]


def test_gate_quarantines_an_unseen_category_and_an_out_of_range_value(spark: SparkSession) -> None:
    data = derive_input_suite(
        spark.createDataFrame(TRAINING, SCHEMA), ["segment", "feature_1"], name="g"
    )
    suite = suite_from_data(data, "gate.yaml")
    scoring = spark.createDataFrame(
        [
            (10, "free", 1.0, 1),
            (11, "enterprise", 1.0, 1),
            (12, "pro", 99.0, 1),
            (13, "pro", 3.0, 2),
        ],
        SCHEMA,
    )
    split = apply_input_gate(scoring, suite)
    try:
        reasons = split.quarantine.select("user_id", F.explode(ERRORS_COLUMN).alias("e")).select(
            "user_id", "e.constraint", "e.message"
        )
        assertDataFrameEqual(
            reasons,
            spark.createDataFrame(
                [
                    (
                        11,
                        "isContainedIn(segment)",
                        "segment = 'enterprise' is not one of ['free', 'pro', 'team']",
                    ),
                    (12, "isInRange(feature_1)", "feature_1 = 99.0 is outside [-1, 11]"),
                ],
                "user_id int, constraint string, message string",
            ),
        )
        assertDataFrameEqual(split.valid, scoring.where("user_id in (10, 13)"))
    finally:
        split.release()


def test_gate_rejects_a_table_whose_feature_changed_type(spark: SparkSession) -> None:
    data = derive_input_suite(spark.createDataFrame(TRAINING, SCHEMA), ["feature_1"], name="g")
    drifted = spark.createDataFrame(
        [(1, "free", "1.0", 1)], "user_id int, segment string, feature_1 string, sessions int"
    )
    with pytest.raises(SuiteError, match="column 'feature_1' is string, expected double"):
        apply_input_gate(drifted, suite_from_data(data, "gate.yaml"))
