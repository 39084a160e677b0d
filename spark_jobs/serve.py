"""`lakegate serve`: the REST model server (no Spark; see `model_server`).

Run `lakegate serve [--host 127.0.0.1] [--port 8080] [--refresh-interval 10]`, then
`curl -s 127.0.0.1:8080/users/champion/predict -d '{"dataframe_records": [{...}]}'`.
"""

from __future__ import annotations

import click

from spark_jobs.services.command import JobContext, lakegate_command


@lakegate_command("serve")
@click.option("--host", default=None, help="Bind address [conf serving.host: 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="[conf serving.port: 8080]"
)
@click.option(
    "--refresh-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds between alias re-resolutions [conf serving.alias_refresh_seconds: 10].",
)
def command(
    job: JobContext, host: str | None, port: int | None, refresh_interval: float | None
) -> int:
    """Serve registered MLflow models over REST: predict, predict-by-key, health, metrics."""
    from model_server.server import serve

    serve(job.settings, host=host, port=port, alias_refresh_seconds=refresh_interval)
    return 0


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("serve")
