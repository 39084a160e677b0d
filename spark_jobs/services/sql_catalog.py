"""What `lakegate sql` and `lakegate predict` share: model functions and views from options."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from lakegate_config.settings import Settings
from lakegate_errors import UserError
from spark_jobs.services.table_io import read_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from udfs import ModelFunction

_NAME = re.compile(r"^[A-Za-z_]\w*$")


def parse_assignments(values: Iterable[str], option: str) -> dict[str, str]:
    """Parse repeated `NAME=VALUE` options into a dict.

    Raises:
        UserError: a value has no `=` or the name is not an identifier.
    """
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, target = value.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not _NAME.match(name) or not target:
            raise UserError(f"{option} {value!r}: expected NAME=VALUE with NAME a SQL identifier")
        parsed[name] = target
    return parsed


def models_used_by(query: str, models: Mapping[str, str]) -> dict[str, str]:
    """Keep the configured models whose function `predict_<name>` the query mentions."""
    lowered = query.lower()
    return {
        name: uri
        for name, uri in models.items()
        if re.search(rf"\bpredict_{re.escape(name.lower())}\b", lowered)
    }


def register_models(
    spark: SparkSession, settings: Settings, models: Mapping[str, str]
) -> dict[str, ModelFunction]:
    """Register each `name -> model URI` as SQL function `predict_<name>` with the settings' store.

    Raises:
        ModelUsageError: a model, alias or version is unknown, or the store is unreachable.
    """
    from udfs import register_model_functions

    return register_model_functions(
        spark,
        models,
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        compiled=settings.scoring.compiled,
    )


def preload_for(settings: Settings, models: Mapping[str, str]) -> threading.Thread | None:
    """Call before the session starts: import what registering `models` loads, meanwhile.

    Only with compiled scoring on (the pandas UDF path loads models in the workers, not here)
    and a model not proven before (a cached verdict loads no model); see
    `udfs.compiled.preload`.
    """
    if not models or not settings.scoring.compiled:
        return None
    from udfs.compiled.preload import preload_model_libraries
    from udfs.compiled.verdict_cache import verdict_likely_cached

    # A registration from a cached verdict loads no model: importing would only slow it.
    if all(verdict_likely_cached(uri) for uri in models.values()):
        return None
    return preload_model_libraries()


def register_views(spark: SparkSession, tables: Mapping[str, str]) -> None:
    """Register a temporary view over each `name -> path` (format by suffix).

    Raises:
        UserError: a path does not exist or its format cannot be told.
    """
    for name, path in tables.items():
        read_table(spark, path, keep_malformed=False).createOrReplaceTempView(name)


def configured_views(settings: Settings, options: Mapping[str, str]) -> dict[str, str]:
    """The views a SQL session starts with: `tables:` in conf (paths resolved), then `--table`.

    A `--table NAME=PATH` replaces a configured table of the same name.
    """
    views = {name: str(settings.resolve(path)) for name, path in settings.tables.items()}
    views.update(options)
    return views
