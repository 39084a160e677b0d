"""Kafka topics as DataFrames of a suite's columns: JSON values parsed, malformed ones kept.

Each record's value is read as text and parsed by `from_json` against the schema. A record that
does not parse into it (not JSON, a value that is not an object, a field of another type, a
non-nullable field that is absent or null, a null value) keeps its text in
`table_io.MALFORMED_COLUMN`, which the gate quarantines as "malformed line: <value>"; no record
is dropped. As far as `from_json` can tell: it reads the first JSON value of the text (trailing
text is ignored) and turns numbers and booleans into text for string columns. A null value (a
tombstone) is kept as the text `null`, like the JSON literal.

Spark's Kafka connector (`kafka.coordinate` in `conf/<env>.yaml`) must be on the classpath.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import reduce

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.readwriter import DataStreamReader
from pyspark.sql.types import StringType, StructField, StructType

from lakegate_errors import EnvironmentProblem
from spark_jobs.services.table_io import MALFORMED_COLUMN

CONNECTOR_EXAMPLE = "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7"

_VALUE = "_lakegate_kafka_value"
_PARSED = "_lakegate_kafka_parsed"
_JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": MALFORMED_COLUMN}


def kafka_frame(
    spark: SparkSession,
    topic: str,
    bootstrap: str,
    schema: StructType,
    options: Mapping[str, str],
) -> DataFrame:
    """A streaming DataFrame of `topic`'s records: `schema`'s columns and `MALFORMED_COLUMN`.

    `options` go to `readStream.format("kafka")` after `subscribe`, `kafka.bootstrap.servers`
    and `startingOffsets: earliest` (a new query gates the records already in the topic), so
    they may set `startingOffsets`, `maxOffsetsPerTrigger`, `kafka.*` client settings, ...

    Raises:
        EnvironmentProblem: Spark's Kafka connector is not on the classpath.
    """
    return parse_values(_records(spark, topic, bootstrap, options, streaming=True), schema)


def kafka_batch_frame(
    spark: SparkSession,
    topic: str,
    bootstrap: str,
    schema: StructType,
    options: Mapping[str, str],
) -> DataFrame:
    """`kafka_frame` read as a batch (`spark.read`): the records from the earliest to the latest.

    Raises:
        EnvironmentProblem: Spark's Kafka connector is not on the classpath.
    """
    return parse_values(_records(spark, topic, bootstrap, options, streaming=False), schema)


def _records(
    spark: SparkSession,
    topic: str,
    bootstrap: str,
    options: Mapping[str, str],
    *,
    streaming: bool,
) -> DataFrame:
    reader: DataFrameReader | DataStreamReader = spark.readStream if streaming else spark.read
    defaults = {
        "subscribe": topic,
        "kafka.bootstrap.servers": bootstrap,
        "startingOffsets": "earliest",
    }
    try:
        return reader.format("kafka").options(**{**defaults, **options}).load()
    except AnalysisException as exc:
        if "Failed to find data source: kafka" not in str(exc):  # Spark 3.5: _LEGACY_..._1140
            raise
        raise EnvironmentProblem(
            "Spark's Kafka connector is not on the classpath: set kafka.coordinate in "
            f"conf/<env>.yaml (for example {CONNECTOR_EXAMPLE}) or kafka.jars to local copies, "
            "then run `make setup` (python -m spark_jobs.jars) once"
        ) from None


def parse_values(records: DataFrame, schema: StructType) -> DataFrame:
    """Kafka records (a binary or string `value` column) as `schema`'s columns + the raw text.

    `MALFORMED_COLUMN` in `schema` is not a column to parse (it is the one this adds).
    """
    fields = [field for field in schema.fields if field.name != MALFORMED_COLUMN]
    parse_schema = StructType(
        [StructField(field.name, field.dataType, True) for field in fields]
        + [StructField(MALFORMED_COLUMN, StringType(), True)]
    )
    text = F.col("value").cast("string")
    parsed = records.select(
        text.alias(_VALUE), F.from_json(text, parse_schema, _JSON_OPTIONS).alias(_PARSED)
    )
    struct = F.col(_PARSED)
    required = [field.name for field in fields if not field.nullable]
    return parsed.select(
        *[struct.getField(field.name).alias(field.name) for field in fields],
        F.when(_malformed(struct, required), F.coalesce(F.col(_VALUE), F.lit("null"))).alias(
            MALFORMED_COLUMN
        ),
    )


def _malformed(struct: Column, required: list[str]) -> Column:
    """True where `from_json` found no object of the schema in the value."""
    tests = [struct.isNull(), struct.getField(MALFORMED_COLUMN).isNotNull()]
    tests += [struct.getField(name).isNull() for name in required]
    return reduce(operator.or_, tests)
