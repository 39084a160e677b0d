"""One SparkSession for the whole run, built by lakegate's own session code from conf/test.yaml.

It also sorts the tests into tiers: every test that needs no JVM (no `spark` fixture, directly
or through another fixture), starts no server or Spark process of its own and is not `slow`
gets the `unit` marker, so `pytest -m unit` runs the suite's JVM-free part alone. A unit test
that starts a JVM after all fails (see `_unit_tests_start_no_jvm`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import bytecode_cache  # noqa: F401  (before pyspark and pandas: their compiled files are kept)
import jvm_flags
import pytest
import run_clock
from pyspark import SparkContext
from pyspark.sql import SparkSession

from lakegate_config.settings import Settings, load_settings
from spark_jobs.services.session import get_session, stop_session

# The longest modules first (their summed test times in a fresh three-process run, 7 Dec 2026:
# 532 s, 499 s, 268 s, 200 s, 156 s, ... down to about 80 s), then the rest in file order:
# `make test`'s workers take whole modules in collection order, so no long module starts last
# and ends the run alone.
LONGEST_FIRST = (
    "test_airflow_dag.py",
    "test_cluster.py",
    "test_validate_job.py",
    "test_concurrent_writers.py",
    "test_stream.py",
    "test_one_pass.py",
    "test_serve_faults.py",
    "test_compiled_scoring.py",
    "test_table_io.py",
    "test_mlflow_postgres.py",
    "test_model_server.py",
    "test_disk_full.py",
    "test_install_script.py",
    "test_readme_examples.py",
    "test_stream_crash.py",
)

UNIT = "unit"
# Fixtures that start the driver's JVM (pytest lists a test's fixtures transitively).
JVM_FIXTURES = frozenset({"spark"})
# Fixtures that start a server or a Spark process, or take many seconds, by (module, fixture).
NOT_UNIT_FIXTURES = {
    ("test_model_server.py", "server"): "lakegate serve in a subprocess",
    ("test_model_server.py", "token_server"): "lakegate serve in a subprocess",
    ("test_model_server.py", "versions"): "trains and registers two MLflow models (~20 s)",
    ("test_serve_sql.py", "server"): "lakegate serve-sql in a subprocess (a JVM)",
    ("test_train.py", "settings"): "trains models into MLflow's sqlite store (~15 s to create)",
}
# Tests that start Spark or a slow process without such a fixture (a subprocess, the CLI
# in-process), by (module, test name without parameters) -> what they start.
NOT_UNIT_TESTS = {
    ("test_validate_job.py", "test_job_script_runs_as_a_program_with_the_same_arguments"): (
        "python spark_jobs/validate.py: a Spark job in a subprocess"
    ),
    ("test_bad_inputs.py", "test_deequ_jar_that_cannot_be_resolved_is_an_environment_error"): (
        "lakegate validate in a subprocess: Ivy resolution in a JVM"
    ),
    ("test_bad_inputs.py", "test_plain_spark_submit_without_the_deequ_jar_says_how_to_add_it"): (
        "spark-submit in a subprocess"
    ),
    ("test_bad_inputs.py", "test_credentials_in_an_input_uri_never_reach_the_error_message"): (
        "lakegate validate in-process: starts Spark before reading the input"
    ),
    ("test_sql.py", "test_sql_bad_query_exits_2"): "lakegate sql in-process: starts Spark",
    ("test_sql.py", "test_sql_view_over_missing_path_exits_2"): (
        "lakegate sql in-process: starts Spark"
    ),
    ("test_preload.py", "test_preload_imports_pyfunc_sklearn_and_skops_in_a_background_thread"): (
        "a fresh Python importing MLflow and scikit-learn (~20 s)"
    ),
    ("test_model_server.py", "test_a_bind_beyond_loopback_without_a_token_is_refused"): (
        "lakegate serve in a subprocess (~13 s of imports)"
    ),
    (
        "test_kafka_source.py",
        "test_without_the_connector_a_kafka_source_is_an_environment_problem_naming_the_setting",
    ): "a plain Spark session in a subprocess",
    ("test_serve_sql.py", "test_a_worker_keeps_memory_flat_across_twenty_alias_moves"): (
        "saves and loads MLflow models twenty times (~10 s)"
    ),
}
# Markers of tests that need more than this process (a broker, several Spark jobs).
NOT_UNIT_MARKERS = ("slow", "kafka")
UNIT_MARKER = (
    f"{UNIT}: needs no JVM, no server and no Spark process (set by tests/conftest.py; "
    "`pytest -m unit` runs them alone, in under a minute)"
)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the `unit` marker, start JVMs with `jvm_flags`; under `-m unit`, any JVM a test
    starts fails at once.

    The unit tier runs with JAVA_HOME set to a folder whose `bin/java` refuses to start (so a
    test that starts Spark, in this process or in a subprocess, fails saying why), instead of
    trusting the lists above.
    """
    config.addinivalue_line("markers", UNIT_MARKER)
    run_clock.install(config)
    jvm_flags.start_jvms_with_speed_flags()
    if config.getoption("markexpr", "") == UNIT:
        home = Path(tempfile.mkdtemp(prefix="lakegate-no-jvm-"))
        java = home / "bin" / "java"
        java.parent.mkdir()
        java.write_text(
            "#!/bin/sh\necho 'the unit tier starts no JVM (java '\"$*\"'): give the test the "
            "spark fixture or list it in tests/conftest.py NOT_UNIT_TESTS' >&2\nexit 97\n"
        )
        java.chmod(0o755)
        os.environ["JAVA_HOME"] = str(home)
        config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))


def is_unit(item: pytest.Item) -> bool:
    """Whether `item` runs without a JVM, a server or a Spark process, and is not slow."""
    module, fixtures = item.path.name, set(getattr(item, "fixturenames", ()))
    name = getattr(item, "originalname", item.name)
    return not (
        any(item.get_closest_marker(marker) for marker in NOT_UNIT_MARKERS)
        or fixtures & JVM_FIXTURES
        or any((module, fixture) in NOT_UNIT_FIXTURES for fixture in fixtures)
        or (module, name) in NOT_UNIT_TESTS
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the unit tier; run the longest modules first (a stable sort: modules keep order)."""
    for item in items:
        if is_unit(item):
            item.add_marker(UNIT)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="module", autouse=True)
def _mlflow_uris_as_each_module_found_them() -> Iterator[None]:
    """A module that points MLflow at its own store (a tracking server it stops at its end, a
    sandbox registry) leaves MLflow's process-wide URIs, globals and MLFLOW_* variables, as it
    found them: the next module of the same test process must not call a server that is gone."""
    from spark_jobs.services.training import mlflow_uris_kept

    with mlflow_uris_kept():
        yield


@pytest.fixture(autouse=True)
def _unit_tests_start_no_jvm(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test of the unit tier that starts the driver's JVM fails, naming the rule."""
    started_before = SparkContext._gateway is not None
    yield
    if request.node.get_closest_marker(UNIT) and not started_before:
        assert SparkContext._gateway is None, (
            f"{request.node.nodeid} is in the unit tier but started a JVM: give it the `spark` "
            "fixture or list it in tests/conftest.py NOT_UNIT_TESTS"
        )


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lakegate-state")
    os.environ["LAKEGATE_STATE_DIR"] = str(path)
    os.environ["LAKEGATE_ENV"] = "test"
    # Compiled-scoring verdicts of the tests' models stay out of the user's ~/.cache.
    os.environ["LAKEGATE_COMPILED_CACHE"] = str(path / "compiled-verdicts")
    return path


@pytest.fixture(scope="session")
def settings(state_dir: Path) -> Settings:
    return load_settings("test")


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[SparkSession]:
    session = get_session(settings)
    yield session
    stop_session(session)
