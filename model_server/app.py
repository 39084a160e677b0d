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

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakegate_config.redaction import redact
from lakegate_config.settings import Settings
from lakegate_errors import EnvironmentProblem, LakegateError
from model_server.batching import ScoringQueue
from model_server.errors import BadPayload
from model_server.metrics import UNKNOWN_MODEL, ServingMetrics
from model_server.models import (
    MAX_NAME_LENGTH,
    MODEL_NAME_PATTERN,
    REFERENCE_PATTERN,
    LoadedModel,
    ModelCache,
)
from model_server.online import ServedStore
from model_server.openapi import (
    BY_KEY_BODY,
    PREDICT_BODY,
    HealthAnswer,
    PredictAnswer,
    PredictByKeyAnswer,
    error_responses,
    json_body,
)
from model_server.payload import frame_from_payload, predictions_to_json
from online_store import EntityKeysNotFound, FeatureViewNotFound, OnlineStore
from udfs.errors import ModelUsageError
from udfs.signature_frame import frame_problems

log = logging.getLogger("lakegate.model_server")
BLOCKING_THREADS = 8


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
        self.queue = ScoringQueue(
            on_call=lambda key, n: self.metrics.batch_requests.labels(*key).observe(n)
        )
        self.online = ServedStore(settings)
        # Lookups and model loads run on threads that live as long as the server: the SQLite
        # store keeps a connection per thread, and anyio's pool ends idle threads and starts
        # new ones, each with a new connection that stays open (RSS grew 54 MB over 229k
        # requests, 3.5 MB a minute, until this).
        self.blocking = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="lakegate-serve")

    @property
    def store(self) -> OnlineStore:
        """The online store, opened once on first use (the server starts without it)."""
        return self.online.get()

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
        self.blocking.shutdown(wait=False, cancel_futures=True)
        self.models.close()
        self.online.close()


@dataclass(frozen=True)
class Prepared:
    """A request's rows, checked against the signature, ready to be scored.

    Attributes:
        frame: the model's inputs only, in signature order.
        where: what the rows are, for messages ("payload", "rows of feature view 'v'").
        extra: fields the answer adds (`feature_view`).
    """

    frame: pd.DataFrame
    where: str
    extra: dict[str, Any] = field(default_factory=dict)


def _checked(model: LoadedModel, frame: pd.DataFrame, where: str, **extra: Any) -> Prepared:
    """`frame` checked against the model's signature, cut to its inputs.

    Raises:
        BadPayload: a missing or mistyped feature; the message names each.
    """
    problems = frame_problems(frame, model.inputs)
    if problems:
        raise BadPayload(f"model {model.name} version {model.version}: {'; '.join(problems)}")
    return Prepared(frame[list(model.inputs.spec.input_names)], where, extra)


def _prepare_predict(state: ServingState, model: LoadedModel, body: Any) -> Prepared:
    spec, required = model.inputs.spec, model.inputs.required
    names = [n for n, needed in zip(spec.input_names, required, strict=True) if needed]
    return _checked(model, frame_from_payload(body, names), "payload")


def _prepare_by_key(state: ServingState, model: LoadedModel, body: Any) -> Prepared:
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list) or not body["keys"]:
        raise BadPayload(
            'the body must be {"keys": [key, ...], "feature_view": "name"} with at least one '
            "key (a value, a list in key order, or {column: value}); feature_view defaults to "
            f"{state.settings.serving.feature_view!r}"
        )
    view = body.get("feature_view") or state.settings.serving.feature_view
    if not isinstance(view, str):
        raise BadPayload("feature_view must be the name of a materialized feature view")
    rows = state.online.lookup(view, body["keys"])
    frame = pd.DataFrame.from_records(rows)
    return _checked(model, frame, f"rows of feature view {view!r}", feature_view=view)


async def _scored(state: ServingState, model: LoadedModel, prepared: Prepared) -> list[Any]:
    """Score the prepared rows, batched with concurrent requests for the same version."""
    if prepared.frame.empty:
        return []
    key = (model.name, model.version)
    try:
        scored = await state.queue.score(key, model.score, prepared.frame)
    except ModelUsageError:
        raise
    except Exception as exc:  # the model refused values its signature allows (inf, a category)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadPayload(
            f"model {model.name} version {model.version} could not score the "
            f"{prepared.where}: {reason}"
        ) from None
    state.metrics.rows_scored.labels(model.name, model.version).inc(len(prepared.frame))
    return predictions_to_json(scored)


async def _predictions(
    state: ServingState,
    name: str,
    reference: str,
    body: Any,
    prepare: Callable[[ServingState, LoadedModel, Any], Prepared],
    labels: list[str],
    *,
    blocking: bool,
) -> dict[str, Any]:
    """Resolve, prepare and score one request; `labels` gets the model and version."""

    def resolve_and_prepare() -> tuple[LoadedModel, Prepared]:
        model = state.models.get(name, reference)
        labels[:] = [model.name, model.version]
        return model, prepare(state, model, body)

    loaded = None if blocking else state.models.cached(name, reference)
    if loaded is None:  # may load the model or read the online store: not in the loop
        loop = asyncio.get_running_loop()
        model, prepared = await loop.run_in_executor(state.blocking, resolve_and_prepare)
    else:  # parsing and checking a payload costs ~0.1 ms: less than a thread hop
        model = loaded
        labels[:] = [model.name, model.version]
        prepared = prepare(state, model, body)
    predictions = await _scored(state, model, prepared)
    return {
        "predictions": predictions,
        **prepared.extra,
        "model_name": model.name,
        "model_version": model.version,
    }


async def _answer(
    state: ServingState,
    endpoint: str,
    request: Request,
    prepare: Callable[[ServingState, LoadedModel, Any], Prepared],
    *,
    blocking: bool,
) -> Response:
    """Authorize, parse, predict; map errors to statuses; record the request's metrics.

    `blocking` preparations (online store lookups) and any request whose model is not loaded
    yet run in a worker thread; the others in the event loop.
    """
    started = time.perf_counter()
    name, reference = request.path_params["model"], request.path_params["reference"]
    labels = [UNKNOWN_MODEL, ""]
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
            answer = await _predictions(
                state, name, reference, body, prepare, labels, blocking=blocking
            )
            status = 200
            response = JSONResponse(answer)
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
        summary="MLflow models by name and version or alias; features from the online store",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.serving = state
    _add_routes(app, state)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "ENDPOINT_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code)
        response = _error(exc.status_code, code or "BAD_REQUEST", str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    return app


_MODEL = Path(
    description="the registered model's name",
    json_schema_extra={"pattern": MODEL_NAME_PATTERN, "maxLength": MAX_NAME_LENGTH},
)
_REFERENCE = Path(
    description="a version number, an alias (champion) or latest",
    json_schema_extra={"pattern": REFERENCE_PATTERN, "maxLength": MAX_NAME_LENGTH},
)


def _add_routes(app: FastAPI, state: ServingState) -> None:
    """predict, predict-by-key, health, metrics, each documented in /openapi.json."""

    @app.post(
        "/{model}/{reference}/predict",
        response_model=PredictAnswer,
        responses=error_responses(400, 401, 404, 500, 503),
        openapi_extra=json_body(PREDICT_BODY),
    )
    async def predict(
        request: Request, model: str = _MODEL, reference: str = _REFERENCE
    ) -> Response:
        """Score an MLflow scoring payload with the model version the reference names."""
        return await _answer(state, "predict", request, _prepare_predict, blocking=False)

    @app.post(
        "/{model}/{reference}/predict-by-key",
        response_model=PredictByKeyAnswer,
        responses=error_responses(400, 401, 404, 500, 503),
        openapi_extra=json_body(BY_KEY_BODY),
    )
    async def predict_by_key(
        request: Request, model: str = _MODEL, reference: str = _REFERENCE
    ) -> Response:
        """Score the online store's rows of the given entity keys."""
        return await _answer(state, "predict-by-key", request, _prepare_by_key, blocking=True)

    @app.get("/health", response_model=HealthAnswer)
    async def health() -> dict[str, Any]:
        """Liveness and readiness: what is served, and why it is degraded if it is."""
        problems = state.models.problems()
        return {
            "status": "degraded" if problems else "ok",
            "serving": state.models.served_references(),
            "loaded": [f"{m.name}/{m.version}" for m in state.models.loaded()],
            "problems": problems,
        }

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **error_responses(401),
        },
    )
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (text format)."""
        if not state.authorized(request):
            return _error(401, "UNAUTHENTICATED", "send Authorization: Bearer <token>")
        state.metrics.loaded_models.set(len(state.models.loaded()))
        return Response(state.metrics.exposition(), media_type=state.metrics.content_type)
