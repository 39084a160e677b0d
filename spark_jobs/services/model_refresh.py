"""Model functions of a long-lived session (`lakegate sql` shell, `serve-sql`), kept current.

A `ModelCatalog` registers `predict_<name>` for each configured model and re-resolves their
aliases on demand (`refresh`, the shell's `REFRESH MODELS`, the SQL function
`refresh_models()`) or every few seconds on a thread (`start_refreshing`): when
`models:/users@champion` has moved to another version, the function is registered again over
the new version while the server runs. Queries already running keep the version they started
with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lakegate_config.settings import Settings
from lakegate_errors import LakegateError
from spark_jobs.services.sql_catalog import register_models

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from udfs import ModelFunction

REFRESH_FUNCTION = "refresh_models"
_LOG = logging.getLogger(__name__)


class ModelCatalog:
    """The `predict_<name>` functions of one session, re-registered when an alias moves."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        configured: Mapping[str, str],
        requested: Mapping[str, str],
    ) -> None:
        """Remember the models: `configured` ones (conf) may be missing, `requested` may not."""
        self._spark = spark
        self._settings = settings
        self._models = {**configured, **requested}
        self._required = set(requested)
        self._functions: dict[str, ModelFunction] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def functions(self) -> dict[str, ModelFunction]:
        """The registered functions by model name (a copy)."""
        return dict(self._functions)

    def register_all(self) -> list[str]:
        """Register every model; return one line per model (its path, or why it is missing).

        Raises:
            ModelUsageError: a model given with `--model` cannot be registered.
        """
        lines = []
        with self._lock:
            for name, uri in self._models.items():
                try:
                    function = register_models(self._spark, self._settings, {name: uri})[name]
                except LakegateError as exc:
                    if name in self._required:
                        raise
                    lines.append(f"predict_{name} is not available: {exc}")
                    continue
                self._functions[name] = function
                lines.append(_describe(function))
        return lines

    def refresh(self) -> list[str]:
        """Re-resolve every model URI; register again those whose version changed.

        Returns:
            One line per model: unchanged, moved (old -> new version), or still missing.
        """
        from udfs.model_function import resolve_model

        lines = []
        with self._lock:
            for name, uri in self._models.items():
                current = self._functions.get(name)
                try:
                    resolved = resolve_model(
                        uri,
                        tracking_uri=self._settings.tracking_uri,
                        registry_uri=self._settings.registry_uri,
                    )
                    if current is not None and (
                        resolved.model_version is None
                        or resolved.model_version == current.model.model_version
                    ):
                        lines.append(f"predict_{name}: unchanged ({current.description})")
                        continue
                    function = register_models(self._spark, self._settings, {name: uri})[name]
                except LakegateError as exc:
                    lines.append(f"predict_{name}: not refreshed: {exc}")
                    continue
                self._functions[name] = function
                was = f"version {current.model.model_version}" if current else "missing"
                model = function.model
                now = f"{model.model_name} version {model.model_version}"
                lines.append(f"predict_{name}: now {now} (was {was}), {function.path}")
        for line in lines:
            if "unchanged" not in line:
                _LOG.warning("%s", line)
        return lines

    def start_refreshing(self, interval_seconds: float) -> None:
        """Refresh every `interval_seconds` on a daemon thread (0: never)."""
        if interval_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._refresh_loop, args=(interval_seconds,), name="lakegate-model-refresh"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop_refreshing(self) -> None:
        """Stop the refresh thread and wait for a refresh in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _refresh_loop(self, interval_seconds: float) -> None:
        while not self._stop.wait(interval_seconds):
            try:
                self.refresh()
            except Exception:  # keep serving with the functions there are
                _LOG.exception("refreshing the model functions failed")

    def register_refresh_function(self) -> None:
        """Register `refresh_models()`: a SQL call refreshes now and returns what it did."""
        from pyspark.java_gateway import ensure_callback_server_started

        ensure_callback_server_started(self._spark.sparkContext._gateway)
        registry = self._spark._jsparkSession.sessionState().functionRegistry()
        registry.createOrReplaceTempFunction(REFRESH_FUNCTION, _RefreshBuilder(self), "python_udf")


class _RefreshBuilder:
    """`refresh_models()` as a `scala.Function1[Seq[Expression], Expression]` on the driver.

    Spark calls it while analysing a statement that names the function; it refreshes the
    catalog there and then, and the call becomes a string literal listing what changed.
    """

    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    def apply(self, children: Any) -> Any:
        """Refresh, and return the report as a literal expression (Spark calls this)."""
        from spark_jobs.services.session import jvm_of

        jvm = jvm_of(self._catalog._spark)
        try:
            report = "; ".join(self._catalog.refresh()) or "no models configured"
        except Exception as exc:
            report = f"refresh failed: {exc}"
        return jvm.org.apache.spark.sql.functions.lit(report).expr()

    class Java:
        """py4j: the JVM sees this object as a `scala.Function1`."""

        implements = ["scala.Function1"]


def _describe(function: ModelFunction) -> str:
    from udfs.compiled import describe_path

    return describe_path(function)


def prepare_sql_session(
    spark: SparkSession,
    settings: Settings,
    views: Mapping[str, str],
    requested_models: Mapping[str, str],
) -> tuple[ModelCatalog, list[str]]:
    """Register the views and every model function of a long-lived SQL session.

    The views are read on a second thread while the models register (both mostly wait on a
    cold JVM, so together they take the longer of the two rather than the sum).

    Returns:
        The catalog (with `refresh_models()` registered) and one line per model.

    Raises:
        UserError: a view's path cannot be read, or a `--model` cannot be registered.
    """
    from concurrent.futures import ThreadPoolExecutor

    from spark_jobs.services.sql_catalog import register_views

    catalog = ModelCatalog(spark, settings, settings.models, requested_models)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakegate-views") as pool:
        views_done = pool.submit(register_views, spark, views)
        lines = catalog.register_all()
        views_done.result()
    catalog.register_refresh_function()
    return catalog, lines
