"""The REST model server as an ASGI app (FastAPI): predict, predict-by-key, health, metrics.

    POST /{model}/{version_or_alias}/predict         MLflow scoring payload -> predictions
    POST /{model}/{version_or_alias}/predict-by-key  {"keys": [...], "feature_view": "..."}
    GET  /health                                     always open (liveness, readiness)
    GET  /metrics                                    Prometheus text

Answers: `{"predictions": [...], "model_name": ..., "model_version": ...}`; errors are
`{"error_code": ..., "message": ...}` with 400 (payload, signature), 401 (token), 404 (model,
version, alias, feature view, entity key), 503 (registry or online store unreachable) or 500 (a
bug, logged on the server; the client never sees a stack trace).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from lakegate_config.redaction import redact
from lakegate_config.settings import Settings
from lakegate_errors import EnvironmentProblem, LakegateError
from model_server.errors import BadPayload
from model_server.metrics import UNKNOWN_MODEL, ServingMetrics
from model_server.models import LoadedModel, ModelCache
from model_server.payload import frame_from_payload, predictions_to_json
from online_store import (
    EntityKeysNotFound,
    FeatureViewNotFound,
    OnlineStore,
    open_online_store,
)
from udfs.errors import ModelUsageError
from udfs.scoring import score_batch
from udfs.signature_frame import frame_problems

log = logging.getLogger("lakegate.model_server")


def _status_of(exc: LakegateError) -> tuple[int, str]:
    status = getattr(exc, "status", None)
    if status is not None:
        return status, exc.error_code  # type: ignore[attr-defined]
    if isinstance(exc, FeatureViewNotFound | EntityKeysNotFound):
        return 404, "RESOURCE_DOES_NOT_EXIST"
    if isinstance(exc, EnvironmentProblem):
        return 503, "TEMPORARILY_UNAVAILABLE"
    return 400, "BAD_REQUEST"


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error_code": code, "message": message}, status, headers=headers)


class ServingState:
    """What every request shares: settings, the model cache, metrics, the online store."""

    def __init__(self, settings: Settings, refresh_seconds: float) -> None:
        serving = settings.serving
        self.settings = settings
        self.metrics = ServingMetrics()
        self.models = ModelCache(
            tracking_uri=settings.tracking_uri,
            registry_uri=settings.registry_uri,
            refresh_seconds=refresh_seconds,
            max_models=serving.max_loaded_models,
            max_bytes=int(serving.max_loaded_megabytes * 1024 * 1024),
            on_load=lambda m: self.metrics.model_loads.labels(m.name, m.version).inc(),
        )
        self.token = os.environ.get(serving.auth_token_env) if serving.auth_token_env else None
        self._store: OnlineStore | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> OnlineStore:
        """The online store, opened once on first use (the server starts without it)."""
        with self._store_lock:  # concurrent first requests share one store
            if self._store is None:
                conf = self.settings.online_store
                self._store = open_online_store(
                    conf.kind, path=self.settings.online_store_path, url=conf.url
                )
            return self._store

    def authorized(self, request: Request) -> bool:
        """Whether the request carries the configured bearer token (always, without one)."""
        if not self.token:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    def close(self) -> None:
        """Stop refreshing aliases, drop loaded models, close the online store."""
        self.models.close()
        with self._store_lock:
            if self._store is not None:
                self._store.close()


def _score(state: ServingState, model: LoadedModel, frame: pd.DataFrame, where: str) -> list[Any]:
    """Check `frame` against the model's signature and score it with `udfs.scoring`."""
    problems = frame_problems(frame, model.inputs)
    if problems:
        raise BadPayload(f"model {model.name} version {model.version}: {'; '.join(problems)}")
    if frame.empty:
        return []
    try:
        scored = score_batch(model.pyfunc, (frame,), model.inputs.spec)
    except ModelUsageError:
        raise
    except Exception as exc:  # the model refused values its signature allows (inf, a category)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadPayload(
            f"model {model.name} version {model.version} could not score the {where}: {reason}"
        ) from None
    state.metrics.rows_scored.labels(model.name, model.version).inc(len(frame))
    return predictions_to_json(scored)


def _predict(state: ServingState, model: LoadedModel, body: Any) -> dict[str, Any]:
    spec, required = model.inputs.spec, model.inputs.required
    names = [n for n, needed in zip(spec.input_names, required, strict=True) if needed]
    frame = frame_from_payload(body, names)
    return {"predictions": _score(state, model, frame, "payload")}


def _predict_by_key(state: ServingState, model: LoadedModel, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list) or not body["keys"]:
        raise BadPayload(
            'the body must be {"keys": [key, ...], "feature_view": "name"} with at least one '
            "key (a value, a list in key order, or {column: value}); feature_view defaults to "
            f"{state.settings.serving.feature_view!r}"
        )
    view = body.get("feature_view") or state.settings.serving.feature_view
    if not isinstance(view, str):
        raise BadPayload("feature_view must be the name of a materialized feature view")
    rows = state.store.lookup(view, body["keys"])
    frame = pd.DataFrame.from_records(rows)
    return {
        "predictions": _score(state, model, frame, f"rows of feature view {view!r}"),
        "feature_view": view,
    }


async def _answer(
    state: ServingState,
    endpoint: str,
    request: Request,
    work: Callable[[ServingState, LoadedModel, Any], dict[str, Any]],
) -> Response:
    """Authorize, parse, resolve and score in a worker thread; record the request's metrics."""
    started = time.perf_counter()
    name, reference = request.path_params["model"], request.path_params["reference"]
    labels = [UNKNOWN_MODEL, ""]

    def run(body: Any) -> dict[str, Any]:
        model = state.models.get(name, reference)
        labels[:] = [model.name, model.version]
        answer = work(state, model, body)
        return {**answer, "model_name": model.name, "model_version": model.version}

    code: str | None = None
    try:
        if not state.authorized(request):
            status, code = 401, "UNAUTHENTICATED"
            response: Response = _error(status, code, "send Authorization: Bearer <token>")
        else:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except (ValueError, UnicodeDecodeError):
                raise BadPayload("the body is not valid JSON") from None
            status = 200
            response = JSONResponse(await run_in_threadpool(run, body))
    except LakegateError as exc:
        status, code = _status_of(exc)
        response = _error(status, code, redact(str(exc)))
    except Exception:
        log.exception("%s %s failed", request.method, request.url.path)
        status, code = 500, "INTERNAL_ERROR"
        response = _error(status, code, "internal error in the model server; see its log")
    state.metrics.observe(
        endpoint, labels[0], labels[1], status, time.perf_counter() - started, code
    )
    return response


def create_app(settings: Settings, *, alias_refresh_seconds: float | None = None) -> FastAPI:
    """The model server app for `settings` (registry, online store, serving bounds).

    Args:
        settings: the environment's settings (`serving`, `online_store`, `mlflow`).
        alias_refresh_seconds: overrides `serving.alias_refresh_seconds`.
    """
    refresh = alias_refresh_seconds or settings.serving.alias_refresh_seconds
    state = ServingState(settings, refresh)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.models.start_refreshing()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="lakegate model server",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.serving = state

    @app.post("/{model}/{reference}/predict")
    async def predict(request: Request) -> Response:
        return await _answer(state, "predict", request, _predict)

    @app.post("/{model}/{reference}/predict-by-key")
    async def predict_by_key(request: Request) -> Response:
        return await _answer(state, "predict-by-key", request, _predict_by_key)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "serving": state.models.served_references(),
            "loaded": [f"{m.name}/{m.version}" for m in state.models.loaded()],
        }

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not state.authorized(request):
            return _error(401, "UNAUTHENTICATED", "send Authorization: Bearer <token>")
        state.metrics.loaded_models.set(len(state.models.loaded()))
        return Response(state.metrics.exposition(), media_type=state.metrics.content_type)

    return app
