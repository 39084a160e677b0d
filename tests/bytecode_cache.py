"""Compiled Python kept between the test run's processes (imported first by tests/conftest.py).

With `PYTHONDONTWRITEBYTECODE=1` in the environment (container images set it) and a virtualenv
installed without bytecode (uv's default), every Python process the run starts compiled pandas,
PySpark, MLflow and scikit-learn from source again: ~8 s of CPU per process before its first
line of work (2.6-3 s with compiled files), paid by each test process, each `lakegate` or
`spark-submit` subprocess and each Spark Python worker. This module lets this process and every
process it starts (they inherit the environment) write and reuse compiled files, under a cache
folder outside the source tree and the virtualenv; a `PYTHONPYCACHEPREFIX` already set is kept.
It must be imported before anything heavy is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE = Path("~/.cache/lakegate/pycache").expanduser()


def keep_compiled_files() -> Path:
    """Write and reuse compiled files here and in child processes; the cache folder."""
    prefix = Path(os.environ.get("PYTHONPYCACHEPREFIX") or CACHE)
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.pycache_prefix = str(prefix)
    sys.dont_write_bytecode = False
    return prefix


keep_compiled_files()
