"""The driver JVM's class-data archive: which sessions map it, and that a real JVM does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lakegate_config.settings import Settings
from spark_jobs.services.class_archive import (
    CLASS_PATH_KEY,
    JAVA_OPTIONS_KEY,
    archive_conf,
    planned_archive,
)
from spark_jobs.services.session import jar_sources, spark_conf
from spark_jobs.submit import build_command

ROOT = Path(__file__).resolve().parents[1]


def _with_archive_folder(settings: Settings, folder: Path | None, **conf: str) -> Settings:
    spark = settings.spark.model_copy(
        update={"class_archive": folder, "conf": {**settings.spark.conf, **conf}}
    )
    return settings.model_copy(update={"spark": spark})


def _fake_jars(tmp_path: Path, *names: str) -> list[str]:
    jars = []
    for name in names:
        (tmp_path / name).write_bytes(b"jar")
        jars.append(f"file:{tmp_path / name}")
    return jars


def test_without_an_archive_the_driver_options_are_left_as_they_are(
    settings: Settings, tmp_path: Path
) -> None:
    configured = _with_archive_folder(settings, tmp_path / "jvm")
    assert archive_conf(configured, {}, _fake_jars(tmp_path, "deequ.jar")) == {}


def test_an_existing_archive_is_mapped_and_the_jars_join_the_driver_class_path(
    settings: Settings, tmp_path: Path
) -> None:
    configured = _with_archive_folder(
        settings, tmp_path / "jvm", **{CLASS_PATH_KEY: "/opt/mine.jar"}
    )
    jars = _fake_jars(tmp_path, "deequ.jar", "delta.jar")
    archive = planned_archive(configured, jars)
    assert archive is not None and archive.parent == tmp_path / "jvm"
    archive.parent.mkdir()
    archive.write_bytes(b"archive")

    conf = archive_conf(configured, {JAVA_OPTIONS_KEY: "-Dmine=1"}, jars)

    assert conf[JAVA_OPTIONS_KEY] == f"-Dmine=1 -XX:SharedArchiveFile={archive}"
    assert conf[CLASS_PATH_KEY].split(os.pathsep) == [
        "/opt/mine.jar",
        str(tmp_path / "deequ.jar"),
        str(tmp_path / "delta.jar"),
    ]


def test_another_jar_set_or_a_changed_jar_names_another_archive(
    settings: Settings, tmp_path: Path
) -> None:
    configured = _with_archive_folder(settings, tmp_path / "jvm")
    first = planned_archive(configured, _fake_jars(tmp_path, "deequ.jar"))
    other = planned_archive(configured, _fake_jars(tmp_path, "deequ.jar", "delta.jar"))
    (tmp_path / "deequ.jar").write_bytes(b"a newer build of the jar")
    changed = planned_archive(configured, [f"file:{tmp_path / 'deequ.jar'}"])
    assert len({first, other, changed}) == 3


def test_class_archive_null_turns_it_off_even_when_dumping(
    settings: Settings, tmp_path: Path
) -> None:
    configured = _with_archive_folder(settings, None)
    jars = _fake_jars(tmp_path, "deequ.jar")
    assert planned_archive(configured, jars) is None
    assert archive_conf(configured, {}, jars, dump_to=tmp_path / "x.jsa") == {}


def test_a_dumping_session_writes_the_archive_at_exit_without_cds_warnings(
    settings: Settings, tmp_path: Path
) -> None:
    configured = _with_archive_folder(settings, tmp_path / "jvm")
    conf = spark_conf(configured, class_archive_dump=tmp_path / "new.jsa")
    options = conf[JAVA_OPTIONS_KEY]
    assert f"-XX:ArchiveClassesAtExit={tmp_path / 'new.jsa'}" in options
    assert "-Xlog:cds=off" in options
    jars, _ = jar_sources(configured)
    on_driver = [Path(entry).name for entry in conf[CLASS_PATH_KEY].split(os.pathsep)]
    # Deequ, Delta and Kafka's connector, not their dependencies that Spark ships in another
    # version (nor the Hadoop client, excluded from the connector's resolution).
    assert sorted(on_driver) == [
        "com.amazon.deequ_deequ-2.1.0-spark-3.5.jar",
        "io.delta_delta-spark_2.12-3.3.3.jar",
        "io.delta_delta-storage-3.3.3.jar",
        "org.apache.commons_commons-pool2-2.11.1.jar",
        "org.apache.kafka_kafka-clients-3.4.1.jar",
        "org.apache.spark_spark-sql-kafka-0-10_2.12-3.5.7.jar",
        "org.apache.spark_spark-token-provider-kafka-0-10_2.12-3.5.7.jar",
    ]
    assert not any("hadoop-client" in jar for jar in jars)
    assert any("scala-reflect-2.12.10" in jar for jar in jars)
    assert conf["spark.jars"].split(",") == jars


def _submitted_conf(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The `--conf` pairs of `lakegate submit --master local[2] validate ...`'s command."""
    command = build_command(settings, "local[2]", "validate", ["s.yaml"], tmp_path / "code.zip")
    pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_a_spark_submitted_driver_maps_an_existing_archive_keeping_the_users_options(
    settings: Settings, tmp_path: Path
) -> None:
    configured = _with_archive_folder(
        settings,
        tmp_path / "jvm",
        **{CLASS_PATH_KEY: "/opt/mine.jar", JAVA_OPTIONS_KEY: "-Dmine=1"},
    )
    jars, packages = jar_sources(configured)
    assert jars and not packages  # `make setup` cached the jars
    before = _submitted_conf(configured, tmp_path)
    assert before[JAVA_OPTIONS_KEY] == "-Dmine=1"
    assert before[CLASS_PATH_KEY] == "/opt/mine.jar"

    archive = planned_archive(configured, jars)
    assert archive is not None
    archive.parent.mkdir()
    archive.write_bytes(b"archive")
    after = _submitted_conf(configured, tmp_path)

    # The options a session of this process would start its own JVM with: the same archive.
    assert after[JAVA_OPTIONS_KEY] == f"-Dmine=1 -XX:SharedArchiveFile={archive}"
    assert after[CLASS_PATH_KEY] == archive_conf(configured, {}, jars)[CLASS_PATH_KEY]
    assert after[CLASS_PATH_KEY].split(os.pathsep)[0] == "/opt/mine.jar"
    assert {k: v for k, v in after.items() if k not in (CLASS_PATH_KEY, JAVA_OPTIONS_KEY)} == {
        k: v for k, v in before.items() if k not in (CLASS_PATH_KEY, JAVA_OPTIONS_KEY)
    }


def test_a_driver_in_cluster_deploy_mode_is_submitted_without_this_machines_archive(
    settings: Settings, tmp_path: Path
) -> None:
    configured = _with_archive_folder(
        settings, tmp_path / "jvm", **{"spark.submit.deployMode": "cluster"}
    )
    archive = planned_archive(configured, jar_sources(configured)[0])
    assert archive is not None
    archive.parent.mkdir()
    archive.write_bytes(b"archive")
    conf = _submitted_conf(configured, tmp_path)
    assert CLASS_PATH_KEY not in conf
    assert "SharedArchiveFile" not in conf.get(JAVA_OPTIONS_KEY, "")


@pytest.mark.slow
def test_setup_writes_an_archive_that_the_next_jvm_maps_spark_deequ_and_delta_from(
    tmp_path: Path,
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    config = yaml.safe_load((ROOT / "conf" / "test.yaml").read_text())
    config["state_dir"] = str(tmp_path / "state")
    (conf_dir / "archive.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "LAKEGATE_CONF_DIR": str(conf_dir), "LAKEGATE_ENV": "archive"}
    env.pop("LAKEGATE_STATE_DIR", None)

    # The default archive folder: `make test` ran setup, which wrote it (else this writes it).
    setup = subprocess.run(
        [sys.executable, "-m", "spark_jobs.jars"], env=env, capture_output=True, text=True
    )
    assert setup.returncode == 0, setup.stderr[-2000:]
    found = re.search(r"^Class-data archive: (\S+\.jsa)", setup.stdout, re.MULTILINE)
    assert found, setup.stdout
    archive = Path(found.group(1))
    assert archive.is_file() and archive.stat().st_size > 50 * 2**20
    assert not list(archive.parent.glob(f"{archive.stem}.*.partial"))

    log = tmp_path / "classes.log"
    config["spark"]["conf"][JAVA_OPTIONS_KEY] = f"-Xlog:class+load=info:file={log}"
    (conf_dir / "archive.yaml").write_text(yaml.safe_dump(config))
    probe = (
        "from lakegate_config.settings import load_settings\n"
        "from spark_jobs.services.session import get_session, stop_session\n"
        "spark = get_session(load_settings())\n"
        "assert spark.range(3).count() == 3\n"
        "spark._jvm.com.amazon.deequ.checks.Check\n"
        "stop_session(spark)\n"
    )
    job = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert job.returncode == 0, job.stderr[-2000:]
    shared = [line for line in log.read_text().splitlines() if "shared objects file (top)" in line]
    for cls in ("org.apache.spark.SparkContext", "com.amazon.deequ.checks.Check"):
        assert any(f" {cls} " in line for line in shared), f"{cls} was not mapped"
    assert len(shared) > 5000
