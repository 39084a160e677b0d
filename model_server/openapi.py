"""What `/openapi.json` documents: request bodies, answers and errors as the server gives them.

The endpoints read their bodies themselves (to answer 400 with MLflow's error shape, not
FastAPI's 422), so the request schemas are attached with `openapi_extra`; the answer models
below are documentation only, kept honest by `tests/test_serve_fuzz.py` (schemathesis checks
every response against them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorAnswer(BaseModel):
    """Every error: an MLflow error code and a message naming the problem and the fix."""

    model_config = ConfigDict(extra="forbid")
    error_code: str = Field(examples=["BAD_REQUEST"])
    message: str


class PredictAnswer(BaseModel):
    """Predictions, one per row, and the version that scored them."""

    model_config = ConfigDict(extra="forbid")
    predictions: list[Any]
    model_name: str
    model_version: str


class PredictByKeyAnswer(PredictAnswer):
    """Predictions for the rows of the keys, in the order asked."""

    feature_view: str


class HealthAnswer(BaseModel):
    """`ok`, or `degraded` with why (the registry could not re-resolve an alias)."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["ok", "degraded"]
    serving: dict[str, str] = Field(description="reference -> version served")
    loaded: list[str] = Field(description="name/version held in memory")
    problems: dict[str, str] = Field(description="reference -> since when and why")


_ERRORS = {
    400: "a malformed payload, a missing or mistyped feature, a bad model name",
    401: "no or a wrong bearer token (when one is configured)",
    404: "no such model, version, alias, feature view or entity key",
    405: "a method the endpoint does not take",
    500: "a bug in the server (logged there; no stack trace is sent)",
    503: "the registry or the online store cannot be reached",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an endpoint."""
    return {status: {"model": ErrorAnswer, "description": _ERRORS[status]} for status in statuses}


_RECORD = {"type": "object", "additionalProperties": True}
PREDICT_BODY = {
    "description": (
        "Exactly one of MLflow's scoring payloads: dataframe_split, dataframe_records, or "
        "inputs / instances holding records, a column mapping or one record; other fields "
        "are ignored"
    ),
    "type": "object",
    "properties": {
        "dataframe_split": {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "items": {"type": "array"}},
            },
            "required": ["columns", "data"],
        },
        "dataframe_records": {"type": "array", "items": _RECORD},
        "inputs": {"anyOf": [{"type": "array", "items": _RECORD}, _RECORD]},
        "instances": {"anyOf": [{"type": "array", "items": _RECORD}, _RECORD]},
    },
    "oneOf": [
        {"required": ["dataframe_split"]},
        {"required": ["dataframe_records"]},
        {"required": ["inputs"]},
        {"required": ["instances"]},
    ],
}
_KEY = {"anyOf": [{"type": ["string", "integer", "number", "boolean"]}, {"type": "array"}, _RECORD]}
BY_KEY_BODY = {
    "type": "object",
    "properties": {
        "keys": {"type": "array", "items": _KEY, "minItems": 1},
        "feature_view": {"type": "string"},
    },
    "required": ["keys"],
}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON request body."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
