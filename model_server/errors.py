"""Errors the model server answers with: each carries its HTTP status and MLflow error code."""

from __future__ import annotations

from typing import ClassVar

from lakegate_errors import EnvironmentProblem, UserError


class BadPayload(UserError):
    """The request body is not a scoring payload the model can take (HTTP 400)."""

    status: ClassVar[int] = 400
    error_code: ClassVar[str] = "BAD_REQUEST"


class ModelNotFound(UserError):
    """No such registered model, version or alias (HTTP 404)."""

    status: ClassVar[int] = 404
    error_code: ClassVar[str] = "RESOURCE_DOES_NOT_EXIST"


class RegistryUnavailable(EnvironmentProblem):
    """The MLflow registry or the model's artifacts cannot be reached (HTTP 503)."""

    status: ClassVar[int] = 503
    error_code: ClassVar[str] = "TEMPORARILY_UNAVAILABLE"


class BadModelReference(UserError):
    """A model name or version reference that no registry could hold (HTTP 400).

    Checked before the registry, the filesystem or the metrics labels see it.
    """

    status: ClassVar[int] = 400
    error_code: ClassVar[str] = "INVALID_PARAMETER_VALUE"
