"""Model libraries imported while the JVM starts, only for a compiled registration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakegate_config.settings import ScoringSettings, Settings
from spark_jobs.services.sql_catalog import preload_for
from udfs.compiled.verdict_cache import CACHE_ENV, remember_model, verdict_likely_cached


def test_no_preload_without_models_or_with_compiled_scoring_off(settings: Settings) -> None:
    udf_only = settings.model_copy(update={"scoring": ScoringSettings(compiled=False)})
    assert preload_for(settings, {}) is None
    assert preload_for(udf_only, {"users": "models:/users@champion"}) is None


@pytest.mark.slow
def test_preload_imports_pyfunc_sklearn_and_skops_in_a_background_thread(tmp_path: Path) -> None:
    probe = (
        "import sys, threading\n"
        "from lakegate_config.settings import Settings\n"
        "from spark_jobs.services.sql_catalog import preload_for\n"
        "assert 'skops.io' not in sys.modules\n"
        "thread = preload_for(Settings(), {'users': 'models:/users@champion'})\n"
        "assert thread is not threading.current_thread() and thread.daemon\n"
        "thread.join(120)\n"
        "print(sorted(m for m in ('mlflow.pyfunc', 'skops.io', 'sklearn') if m in sys.modules))\n"
    )
    # An empty verdict cache: a verdict another run left for users@champion would skip the preload.
    env = {**os.environ, CACHE_ENV: str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "['mlflow.pyfunc', 'sklearn', 'skops.io']"


def test_a_model_registered_from_a_verdict_before_is_not_preloaded(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    uri = "models:/users@champion"
    assert not verdict_likely_cached(uri)
    remember_model(uri, "predict_users-abc")
    assert not verdict_likely_cached(uri)  # the hint alone: its verdict is not there
    (tmp_path / "predict_users-abc.json").write_text("{}")
    assert verdict_likely_cached(uri)
    assert preload_for(settings, {"users": uri}) is None
    thread = preload_for(settings, {"users": uri, "churn": "models:/churn/1"})
    assert thread is not None
    thread.join(120)
