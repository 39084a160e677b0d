"""The error a model function reports to people: bad call, unknown model, unusable signature."""

from __future__ import annotations

from lakegate_errors import EnvironmentProblem, UserError


class ModelUsageError(UserError, ValueError):
    """A model function is used in a way that cannot give right answers; the message says why.

    The `lakegate` command maps it to exit code 2 with a one-line message.
    """


class ModelStoreUnavailable(EnvironmentProblem):
    """The MLflow tracking store, registry or artifact store cannot be reached (exit 3)."""
