"""Import what a compiled registration loads while the JVM starts, not after it.

A compiled registration loads the model in the driver: MLflow's pyfunc, scikit-learn and skops
(whose import walks scikit-learn's public types) cost 1.5-2.5 s in a fresh process. Started
before the session, they import in a background thread while the main thread waits for Spark's
JVM; the registration's own imports then find them loaded (or wait for the thread to finish).
The main thread imports nothing of theirs meanwhile, so the two cannot deadlock on import locks.
"""

from __future__ import annotations

import logging
import threading

_LOG = logging.getLogger(__name__)


def _import_model_libraries() -> None:
    try:
        import mlflow.pyfunc  # noqa: F401
        import sklearn.pipeline  # noqa: F401
        import skops.io  # noqa: F401
    except Exception as exc:  # the registration imports them again and reports for itself
        _LOG.debug("preloading the model libraries failed: %s", exc)


def preload_model_libraries() -> threading.Thread:
    """Start importing MLflow's pyfunc, scikit-learn and skops in a daemon thread; return it."""
    thread = threading.Thread(
        target=_import_model_libraries, name="lakegate-preload-models", daemon=True
    )
    thread.start()
    return thread
