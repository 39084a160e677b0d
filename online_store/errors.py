"""What the online store reports to people: an unknown view, missing keys, an unreachable store."""

from __future__ import annotations

from lakegate_errors import EnvironmentProblem, UserError


class FeatureViewNotFound(UserError):
    """No feature view of that name was materialized into the online store."""


class EntityKeysNotFound(UserError):
    """Some requested entity keys have no row in the feature view (never a null row instead).

    Attributes:
        view: the feature view looked up.
        missing: the keys that were not found, as given (after type coercion).
    """

    def __init__(self, view: str, missing: list[object]) -> None:
        shown = ", ".join(repr(key) for key in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        super().__init__(
            f"feature view {view!r} has no row for key {shown}{more}; materialize the "
            "feature table again if the entity is new (lakegate materialize)"
        )
        self.view = view
        self.missing = missing


class BadEntityKey(UserError):
    """A requested key does not fit the view's key columns (wrong count, name or type)."""


class OnlineStoreUnavailable(EnvironmentProblem):
    """The online store (the SQLite file or the Redis server) cannot be used."""
