"""scripts/install.sh into a fresh prefix, then the container image's entry points from it.

The Dockerfile runs nothing but this script on a Java 17 + Python 3.11 base, so this test runs
every step an image build runs (no container engine here): a venv, the wheel built from this
repository, conf and the sample, the jars and the class-data archive; then `lakegate serve
--help` and a validate of the sample from outside the repository. The uv and Ivy caches are
the machine's (warm after `make setup`; uv runs offline from its cache); the class-data archive
goes into the prefix, not the user's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]


def _environment(state: Path, base: Path) -> dict[str, str]:
    """This machine's environment without the test run's lakegate and venv settings.

    The installed venv's compiled Python goes under `base` (removed with the install), not
    into the run's cache (tests/bytecode_cache.py): each run installs under a new path.
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
    return env | {"LAKEGATE_STATE_DIR": str(state), "PYTHONPYCACHEPREFIX": str(base / "pycache")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    base = tmp_path_factory.mktemp("install")
    conf = base / "conf-source"
    shutil.copytree(REPO / "conf", conf)
    local = yaml.safe_load((conf / "local.yaml").read_text())
    local["spark"]["class_archive"] = str(base / "jvm")  # keep 150 MB out of ~/.cache
    (conf / "local.yaml").write_text(yaml.safe_dump(local))
    prefix = base / "opt-lakegate"
    python = shutil.which("python3.11") or sys._base_executable
    command = ["bash", str(REPO / "scripts/install.sh"), "--prefix", str(prefix)]
    command += ["--conf", str(conf), "--python", python, "--extras", "lineage"]
    # uv from its cache only (warm after `make setup`, which installs every package of the
    # lineage extra): online, each revalidation of PyPI's pyspark page that comes back changed
    # makes uv build the 300 MB pyspark wheel from its sdist again (54 s against 1.4 s offline).
    env = _environment(base / "state", base) | {"UV_OFFLINE": "1"}
    started = time.monotonic()
    done = subprocess.run(command, cwd=base, env=env, capture_output=True, text=True)
    print(f"install.sh: {time.monotonic() - started:.0f} s\n{done.stdout}")
    assert done.returncode == 0, done.stdout + done.stderr
    yield {"base": base, "prefix": prefix}
    shutil.rmtree(base, ignore_errors=True)  # a venv of ~1 GB


def test_install_script_builds_a_non_editable_venv_with_conf_jars_and_class_archive(
    installed: dict[str, Path],
) -> None:
    prefix, base = installed["prefix"], installed["base"]
    python = prefix / "venv" / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import spark_jobs, openlineage.client; print(spark_jobs.__file__)"],
        cwd=base,
        env=_environment(base / "state", base),
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
    assert [p.suffix for p in (base / "jvm").iterdir()] == [".jsa"]


def test_image_entry_points_run_from_the_installed_venv(
    installed: dict[str, Path], tmp_path: Path
) -> None:
    prefix = installed["prefix"]
    lakegate = str(prefix / "bin" / "lakegate")
    env = _environment(tmp_path / "state", installed["base"])

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
