"""Every notebook runs end to end locally, in the test session, as a data scientist would."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

# Fast tier: every test here took 5 s or more, or shares a fixture that does (7 Dec 2026).
pytestmark = pytest.mark.slow

NOTEBOOKS = sorted(Path("notebooks").glob("*.py"))


def test_notebooks_are_in_databricks_source_format() -> None:
    assert NOTEBOOKS
    for notebook in NOTEBOOKS:
        text = notebook.read_text()
        assert text.startswith("# Databricks notebook source\n"), notebook
        assert "# COMMAND ----------" in text, notebook
        assert "# MAGIC %md" in text, notebook


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_end_to_end(spark, notebook: Path) -> None:
    runpy.run_path(str(notebook), run_name="__main__")
