"""scripts/install.sh into a fresh prefix, then the container image's entry points from it.

The Dockerfile runs nothing but this script on a Java 17 + Python 3.11 base, so this test runs
every step an image build runs (no container engine here): a venv, the wheel built from this
repository, conf and the sample, the jars and the class-data archive; then `lakegate serve
--help` and a validate of the sample from outside the repository. The uv and Ivy caches are
the machine's (warm after `make setup`; uv runs offline from its cache).

The prefix is new each run, at one fixed path (`INSTALL_CACHE/run`) so that what depends only
on the installed files' paths stays warm between runs, beside it: the installed Python's
compiled files and the class-data archive (named for the installed pyspark jars' paths, sizes
and times, which uv's hard links from its cache keep). Without them each run compiled pandas,
PySpark and MLflow again and dumped a new archive from a whole validate (the dump itself is
tests/test_class_archive.py's). A second run at the same time installs under a temporary
folder, everything cold, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]


# The installs' fixed place, and what stays warm beside it between runs.
INSTALL_CACHE = Path("~/.cache/lakegate/install-test").expanduser()


@dataclass(frozen=True)
class Place:
    """Where an install goes (`base`, removed after) and its kept compiled files and archive."""

    base: Path
    pycache: Path
    archives: Path


def _environment(state: Path, place: Place) -> dict[str, str]:
    """This machine's environment without the test run's lakegate and venv settings.

    The installed venv's compiled Python goes to `place.pycache`, not into the run's cache
    (tests/bytecode_cache.py): it is of other files than the repository's venv.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAKEGATE_", "PYSPARK_", "OPENLINEAGE")) and k != "VIRTUAL_ENV"
    }
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))
    )
    return env | {"LAKEGATE_STATE_DIR": str(state), "PYTHONPYCACHEPREFIX": str(place.pycache)}


@contextlib.contextmanager
def _install_place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    """The fixed place under INSTALL_CACHE when no other run holds it, else a temporary one;
    the install's own folder is new either way and removed at the end (a venv of ~1 GB)."""
    INSTALL_CACHE.mkdir(parents=True, exist_ok=True)
    with (INSTALL_CACHE / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            base, kept = INSTALL_CACHE / "run", INSTALL_CACHE
            shutil.rmtree(base, ignore_errors=True)  # an earlier run that was killed
            base.mkdir()
        except BlockingIOError:  # another run installs there now
            base = tmp_path_factory.mktemp("install")
            kept = base
        try:
            yield Place(base, kept / "pycache", kept / "jvm")
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _keep_only(archive: Path) -> None:
    """Remove the other archives of the install's folder (of earlier jar sets, or partial)."""
    for other in archive.parent.iterdir():
        if other != archive:
            other.unlink()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with _install_place(tmp_path_factory) as place:
        base = place.base
        conf = base / "conf-source"
        shutil.copytree(REPO / "conf", conf)
        local = yaml.safe_load((conf / "local.yaml").read_text())
        local["spark"]["class_archive"] = str(place.archives)  # not the user's archive folder
        (conf / "local.yaml").write_text(yaml.safe_dump(local))
        prefix = base / "opt-lakegate"
        python = shutil.which("python3.11") or sys._base_executable
        command = ["bash", str(REPO / "scripts/install.sh"), "--prefix", str(prefix)]
        command += ["--conf", str(conf), "--python", python, "--extras", "lineage"]
        # uv from its cache only (warm after `make setup`, which installs every package of the
        # lineage extra): online, each revalidation of PyPI's pyspark page that comes back
        # changed makes uv build the 300 MB pyspark wheel from its sdist again (54 s against
        # 1.4 s offline).
        env = _environment(base / "state", place) | {"UV_OFFLINE": "1"}
        started = time.monotonic()
        done = subprocess.run(command, cwd=base, env=env, capture_output=True, text=True)
        print(f"install.sh: {time.monotonic() - started:.0f} s\n{done.stdout}")
        assert done.returncode == 0, done.stdout + done.stderr
        archive = re.search(r"^Class-data archive: (\S+\.jsa) ", done.stdout, flags=re.M)
        assert archive is not None, done.stdout
        _keep_only(Path(archive.group(1)))
        yield {"place": place, "prefix": prefix, "archive": Path(archive.group(1))}


def test_install_script_builds_a_non_editable_venv_with_conf_jars_and_class_archive(
    installed: dict[str, Any],
) -> None:
    prefix, place = installed["prefix"], installed["place"]
    python = prefix / "venv" / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import spark_jobs, openlineage.client; print(spark_jobs.__file__)"],
        cwd=place.base,
        env=_environment(place.base / "state", place),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(prefix / "venv"), where  # installed, not the checkout
    assert sorted(p.name for p in (prefix / "dist").glob("lakegate-*")) == [
        "lakegate-0.1.0-py3-none-any.whl",
        "lakegate-0.1.0.tar.gz",
    ]
    assert (prefix / "conf" / "local.yaml").is_file()
    assert (prefix / "checks" / "examples" / "items.yaml").is_file()
    # the archive of this install's JVM and jars (written now, or by an earlier run of this
    # test at the same path), the only file in the folder conf names
    assert [p.name for p in place.archives.iterdir()] == [installed["archive"].name]
    assert installed["archive"].name.startswith("driver-") and installed["archive"].stat().st_size


def test_image_entry_points_run_from_the_installed_venv(
    installed: dict[str, Any], tmp_path: Path
) -> None:
    prefix = installed["prefix"]
    lakegate = str(prefix / "bin" / "lakegate")
    env = _environment(tmp_path / "state", installed["place"])

    serve = subprocess.run(
        [lakegate, "serve", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert serve.returncode == 0, serve.stderr
    assert "Serve registered MLflow models" in serve.stdout

    output = tmp_path / "out"
    validate = subprocess.run(
        [
            lakegate,
            "validate",
            str(prefix / "checks" / "examples" / "items.yaml"),
            "--input",
            str(prefix / "data" / "items.csv"),
            "--output",
            str(output),
            "--quiet",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert validate.returncode == 1, validate.stdout + validate.stderr  # the sample fails by design
    report = json.loads((output / "report.json").read_text())
    assert report["counts"] == {"rows_in": 5, "rows_valid": 4, "rows_quarantined": 1}
    assert report["outputs"]["metrics_repository"].startswith(str(tmp_path / "state"))
