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
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakegate_config.settings import Settings


@click.command(name="serve-sql")
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
@click.option("--env", default=None, help="Configuration environment (conf/<env>.yaml).")
def command(
    host: str | None,
    port: int | None,
    models: tuple[str, ...],
    tables: tuple[str, ...],
    refresh_interval: float | None,
    env: str | None,
) -> None:
    """Serve SQL over JDBC/ODBC with the configured models as predict_<name> functions."""
    from lakegate_config.endpoints import check_port_free
    from lakegate_config.settings import load_settings
    from spark_jobs.services.session import spark_session
    from spark_jobs.services.sql_catalog import configured_views, parse_assignments, preload_for
    from spark_jobs.services.thrift_server import check_bind, server_settings

    extra_models = parse_assignments(models, "--model")
    settings = server_settings(load_settings(env))
    server = settings.sql_server
    host = host or server.host
    port = server.port if port is None else port
    interval = server.refresh_interval_seconds if refresh_interval is None else refresh_interval
    views = configured_views(settings, parse_assignments(tables, "--table"))
    check_bind(host, dict(server.hive_conf))  # before paying for Spark
    check_port_free(host, port)
    stop = _stop_on_signals()
    preload_for(settings, {**settings.models, **extra_models})
    with spark_session(settings, "lakegate-serve-sql") as spark:
        _serve(spark, settings, views, extra_models, host, port, interval, stop)


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the server then stops in order)."""
    stop = threading.Event()

    def _handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    return stop


def _serve(
    spark: SparkSession,
    settings: Settings,
    views: dict[str, str],
    extra_models: dict[str, str],
    host: str,
    port: int,
    interval: float,
    stop: threading.Event,
) -> None:
    """Register views and functions, serve until `stop` is set, then close the port."""
    from spark_jobs.services.model_refresh import prepare_sql_session
    from spark_jobs.services.thrift_server import start_thrift_server

    catalog, lines = prepare_sql_session(spark, settings, views, extra_models)
    for line in lines:
        click.echo(line, err=True)
    server = start_thrift_server(spark, host, port, dict(settings.sql_server.hive_conf))
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


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("serve-sql")
