"""`lakegate serve`: the REST model server (no Spark; see `model_server`).

Run `lakegate serve [--host 127.0.0.1] [--port 8080] [--refresh-interval 10]`, then
`curl -s 127.0.0.1:8080/users/champion/predict -d '{"dataframe_records": [{...}]}'`.
"""

from __future__ import annotations

from dataclasses import dataclass

import click
from pydantic import BaseModel, ConfigDict

from lakegate_config.settings import Settings
from spark_jobs.services.command import JobContext, lakegate_command


class ServeSpec(BaseModel):
    """Where to listen and how often aliases are re-resolved; None: from conf `serving:`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str | None = None
    port: int | None = None
    refresh_interval: float | None = None


@dataclass(frozen=True)
class ServeResult:
    """The server stopped (SIGTERM or Ctrl-C) after serving; it printed what it served."""


def run(settings: Settings, spec: ServeSpec) -> ServeResult:
    """Serve the registry's models over HTTP until SIGTERM or Ctrl-C (`model_server.serve`).

    Raises:
        UserError: a non-loopback host without authentication.
        EnvironmentProblem: the port is taken.
    """
    from model_server.server import serve

    serve(settings, host=spec.host, port=spec.port, alias_refresh_seconds=spec.refresh_interval)
    return ServeResult()


def render(result: ServeResult, spec: ServeSpec) -> int:
    """Nothing more to print: the server's lines went to standard error while it ran."""
    return 0


@lakegate_command("serve", spec=ServeSpec, render=render)
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
def command(job: JobContext, spec: ServeSpec) -> ServeResult:
    """Serve registered MLflow models over REST: predict, predict-by-key, health, metrics."""
    return run(job.settings, spec)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("serve")
