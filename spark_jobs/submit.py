"""`lakegate submit --master URL JOB ARGS...`: spark-submit, with what the job needs, from conf.

Where users stumble with spark-submit is shipping things to the executors: the Deequ and
Delta jars, the project's own Python code, and the interpreter the workers must run. This
builds the command from `conf/<env>.yaml` and runs it (`--dry-run` prints it instead).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import click
import pyspark
from pydantic import BaseModel, ConfigDict

from lakegate_config.redaction import redact
from lakegate_config.settings import PROJECT_ROOT, Settings, conf_dir
from lakegate_errors import UserError
from spark_jobs.services.class_archive import driver_archive_conf
from spark_jobs.services.command import JobContext, lakegate_command
from spark_jobs.services.session import delta_conf, jar_sources

JOBS = {
    "validate": "validate.py",
    "train": "train.py",
    "predict": "predict.py",
    "sql": "sql.py",
    "features": "features.py",
    "run": "pipeline.py",
}
PACKAGES = ("lakegate_errors", "lakegate_config", "checks", "udfs", "online_store", "spark_jobs")
# Deployment settings come from the command line; the rest of conf/<env>.yaml goes as --conf.
_DEPLOYMENT_KEYS = {"spark.master", "spark.jars", "spark.jars.packages", "spark.submit.deployMode"}


def spark_submit_path() -> Path:
    """The spark-submit script of the installed PySpark."""
    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def package_code(settings: Settings) -> Path:
    """Zip the project's packages for `--py-files`, so executors import the same code."""
    target = settings.state_path / "dist" / "lakegate-code.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in PACKAGES:
            for path in sorted((PROJECT_ROOT / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(PROJECT_ROOT))
    temporary.replace(target)
    return target


@dataclass(frozen=True)
class SparkSubmit:
    """A spark-submit command in parts: what `lakegate submit` runs, and Airflow tasks too.

    `argv()` is the command line; `lakegate airflow-dag` hands the same parts to the Airflow
    Spark provider's `SparkSubmitOperator`, so a job submitted either way gets the same jars,
    code, interpreter and conf.
    """

    spark_submit: str
    master: str
    name: str
    jars: tuple[str, ...]
    packages: tuple[str, ...]
    exclude_packages: tuple[str, ...]
    py_files: str
    conf: dict[str, str]
    application: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """The full spark-submit command line."""
        command = [self.spark_submit, "--master", self.master, "--name", self.name]
        if self.jars:
            command += ["--jars", ",".join(self.jars)]
        if self.packages:
            command += ["--packages", ",".join(self.packages)]
            command += ["--exclude-packages", ",".join(self.exclude_packages)]
        command += ["--py-files", self.py_files]
        for key, value in self.conf.items():
            command += ["--conf", f"{key}={value}"]
        return [*command, self.application, *self.args]


def _driver_runs_here(settings: Settings) -> bool:
    """Whether spark-submit starts the driver JVM on this machine (client deploy mode).

    `lakegate submit` passes no deploy mode, so spark-submit's default, client, holds for any
    master unless conf/<env>.yaml asks for cluster mode (a driver elsewhere, where this
    machine's class-data archive does not exist).
    """
    return str(settings.spark.conf.get("spark.submit.deployMode", "client")) == "client"


def submit_parts(
    settings: Settings, master: str, job: str, args: list[str], code_zip: Path
) -> SparkSubmit:
    """The spark-submit command for `job` with `args`, in parts.

    Raises:
        UserError: the job is unknown.
    """
    if job not in JOBS:
        raise UserError(f"unknown job {job!r}; submit one of {', '.join(JOBS)}")
    python = sys.executable
    jars, packages = jar_sources(settings)
    conf = {k: v for k, v in settings.spark.conf.items() if k not in _DEPLOYMENT_KEYS}
    conf.update(delta_conf({k: str(v) for k, v in conf.items()}))
    if packages:
        conf["spark.jars.ivy"] = str(settings.resolve(settings.deequ.ivy_cache))
    conf.setdefault("spark.pyspark.python", python)
    conf.setdefault("spark.pyspark.driver.python", python)
    log_config = settings.project_root / "conf" / "log4j2.properties"
    if log_config.is_file():
        conf.setdefault(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log_config.as_uri()}"
        )
    options = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()}
    if not packages and _driver_runs_here(settings):  # the archive, when it exists
        options.update(driver_archive_conf(settings, options, jars))
    return SparkSubmit(
        spark_submit=str(spark_submit_path()),
        master=master,
        name=f"lakegate-{job}",
        jars=tuple(jars),
        packages=tuple(packages),
        exclude_packages=tuple(settings.jar_excludes) if packages else (),
        py_files=str(code_zip),
        conf=options,
        application=str(PROJECT_ROOT / "spark_jobs" / JOBS[job]),
        args=tuple(args),
        # The job finds conf/ wherever spark-submit runs from (a scheduler's folder too).
        env={
            "LAKEGATE_ENV": settings.env,
            "LAKEGATE_CONF_DIR": str(conf_dir()),
            "PYSPARK_PYTHON": python,
        },
    )


def build_command(
    settings: Settings, master: str, job: str, args: list[str], code_zip: Path
) -> list[str]:
    """The full spark-submit command line for `job` with `args`.

    Raises:
        UserError: the job is unknown.
    """
    return submit_parts(settings, master, job, args, code_zip).argv()


class SubmitSpec(BaseModel):
    """The job to submit, its arguments, the master, and whether only to print the command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str
    dry_run: bool = False
    job_name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubmitResult:
    """The spark-submit command, and its exit code (None: printed, not run)."""

    submit: SparkSubmit
    returncode: int | None


def shown(parts: SparkSubmit) -> str:
    """A spark-submit command as a shell line, secrets redacted."""
    return redact(shlex.join(parts.argv()))


def run(settings: Settings, spec: SubmitSpec) -> SubmitResult:
    """Build the spark-submit command and, unless `dry_run`, run it (its line on standard error).

    Raises:
        UserError: the job is unknown.
    """
    code_zip = package_code(settings)  # spark-submit starts its own session
    parts = submit_parts(settings, spec.master, spec.job_name, list(spec.args), code_zip)
    if spec.dry_run:
        return SubmitResult(parts, None)
    click.echo(shown(parts), err=True)
    completed = subprocess.run(parts.argv(), env=dict(os.environ, **parts.env), check=False)
    return SubmitResult(parts, completed.returncode)


def render(result: SubmitResult, spec: SubmitSpec) -> int:
    """Print the command of a dry run; the exit code is spark-submit's."""
    if result.returncode is None:
        click.echo(shown(result.submit))
        return 0
    return result.returncode


@lakegate_command(
    "submit", spec=SubmitSpec, render=render, context_settings={"ignore_unknown_options": True}
)
@click.option("--master", required=True, help="spark://host:port, yarn, k8s://..., local[N].")
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
@click.argument("job_name", metavar="JOB")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(job: JobContext, spec: SubmitSpec) -> SubmitResult:
    """Run a lakegate job through spark-submit with its jars, code and interpreter shipped."""
    return run(job.settings, spec)


if __name__ == "__main__":
    from spark_jobs.cli import run_as_script

    run_as_script("submit")
