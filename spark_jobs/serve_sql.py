"""`lakegate serve-sql`: a JDBC/ODBC endpoint (HiveServer2) with the predict functions.

    lakegate serve-sql --table features=out/users/features [--port 10000] [--host 127.0.0.1]
    beeline -u jdbc:hive2://127.0.0.1:10000 -e "SELECT avg(predict_users(struct(*))) FROM features"

One warm session serves every client (`spark.sql.hive.thriftServer.singleSession`): the
functions of `models:` and `--model`, the views of `tables:` and `--table`, and
`refresh_models()` are registered in the driver before the port opens. Aliases are re-resolved
every `sql_server.refresh_interval_seconds`. SIGTERM or Ctrl-C stops the server, then Spark.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click
from pydantic import BaseModel, ConfigDict

from spark_jobs.services.command import JobContext, lakegate_command

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakegate_config.settings import Settings


class ServeSqlSpec(BaseModel):
    """Where to listen, extra models and views, the refresh interval; None: from conf."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str | None = None
    port: int | None = None
    models: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    refresh_interval: float | None = None


@dataclass(frozen=True)
class ServeSqlPlan:
    """The spec checked before Spark starts: address, refresh interval, views and models."""

    host: str
    port: int
    interval: float
    views: dict[str, str]
    extra_models: dict[str, str]


@dataclass(frozen=True)
class ServeSqlResult:
    """What was served until the stop: the JDBC URL, the functions and the views."""

    jdbc_url: str
    functions: tuple[str, ...]
    views: tuple[str, ...]


def plan_serving(settings: Settings, spec: ServeSqlSpec) -> ServeSqlPlan:
    """Check the options against the server's settings, before any session starts.

    Raises:
        UserError: a bad NAME=VALUE, or a bind beyond loopback without authentication.
        EnvironmentProblem: the port is taken.
    """
    from lakegate_config.endpoints import check_port_free
    from spark_jobs.services.sql_catalog import configured_views, parse_assignments
    from spark_jobs.services.thrift_server import check_bind

    extra_models = parse_assignments(spec.models, "--model")
    server = settings.sql_server
    host = spec.host or server.host
    port = server.port if spec.port is None else spec.port
    interval = (
        server.refresh_interval_seconds if spec.refresh_interval is None else spec.refresh_interval
    )
    views = configured_views(settings, parse_assignments(spec.tables, "--table"))
    check_bind(host, dict(server.hive_conf))  # before paying for Spark
    check_port_free(host, port)
    return ServeSqlPlan(host, port, interval, views, extra_models)


def run(
    spark: SparkSession,
    settings: Settings,
    spec: ServeSqlSpec,
    *,
    plan: ServeSqlPlan | None = None,
    stop: threading.Event | None = None,
) -> ServeSqlResult:
    """Register views and functions, serve until `stop` is set (default: SIGTERM or SIGINT).

    `settings` are the server's (`thrift_server.server_settings`), as the session's were.
    """
    plan = plan or plan_serving(settings, spec)
    return _serve(spark, settings, plan, stop or _stop_on_signals())


def render(result: ServeSqlResult, spec: ServeSqlSpec) -> int:
    """Nothing more to print: the server's lines went to standard error while it ran."""
    return 0


@lakegate_command("serve-sql", spec=ServeSqlSpec, render=render)
@click.option("--host", default=None, help="Bind address [conf sql_server.host: 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="[conf sql_server.port: 10000]"
)
@click.option("--model", "models", multiple=True, help="NAME=URI: register predict_NAME too.")
@click.option("--table", "tables", multiple=True, help="NAME=PATH: a temporary view over a path.")
@click.option(
    "--refresh-interval",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between alias re-resolutions, 0 for never [conf: 60].",
)
def command(job: JobContext, spec: ServeSqlSpec) -> ServeSqlResult:
    """Serve SQL over JDBC/ODBC with the configured models as predict_<name> functions."""
    from spark_jobs.services.sql_catalog import preload_for
    from spark_jobs.services.thrift_server import server_settings

    job.settings = server_settings(job.settings)  # the session is built from these
    plan = plan_serving(job.settings, spec)  # bad options or a taken port fail before Spark
    stop = _stop_on_signals()
    preload_for(job.settings, {**job.settings.models, **plan.extra_models})
    return run(job.spark, job.settings, spec, plan=plan, stop=stop)


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the server then stops in order)."""
    stop = threading.Event()

    def _handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    return stop


def _serve(
    spark: SparkSession, settings: Settings, plan: ServeSqlPlan, stop: threading.Event
) -> ServeSqlResult:
    """Register views and functions, serve until `stop` is set, then close the port."""
    from spark_jobs.services.model_refresh import prepare_sql_session
    from spark_jobs.services.thrift_server import start_thrift_server

    views, interval = plan.views, plan.interval
    catalog, lines = prepare_sql_session(spark, settings, views, plan.extra_models)
    for line in lines:
        click.echo(line, err=True)
    server = start_thrift_server(spark, plan.host, plan.port, dict(settings.sql_server.hive_conf))
    catalog.start_refreshing(interval)
    names = ", ".join(f"predict_{name}" for name in catalog.functions) or "none"
    click.echo(
        f"serving {server.jdbc_url} (functions: {names}; views: {', '.join(views) or 'none'}; "
        f"aliases re-resolved every {interval:g} s{' (off)' if not interval else ''}); "
        "stop with SIGTERM or Ctrl-C",
        err=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        click.echo("stopping: closing the JDBC port, then Spark", err=True)
        catalog.stop_refreshing()
        server.stop()
    functions = tuple(f"predict_{name}" for name in catalog.functions)
    return ServeSqlResult(server.jdbc_url, functions, tuple(views))


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("serve-sql")
