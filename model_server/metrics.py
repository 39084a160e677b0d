"""The server's Prometheus metrics, in a registry of its own (one per app).

    lakegate_serving_requests_total{endpoint, model, version, status}
    lakegate_serving_errors_total{endpoint, model, version, error_code}
    lakegate_serving_request_duration_seconds{endpoint, model, version}  (histogram)
    lakegate_serving_rows_scored_total{model, version}
    lakegate_serving_model_loads_total{model, version}
    lakegate_serving_loaded_models
    lakegate_serving_batch_requests{model, version}  (histogram: requests per model call)

`model` is `(unknown)` for names the registry does not know, so a client cannot grow the
label set without bound; `version` is empty when no version was resolved.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

UNKNOWN_MODEL = "(unknown)"
# Milliseconds matter here: single-record predictions take 1-10 ms.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServingMetrics:
    """Counters and a latency histogram per endpoint, model and version."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["endpoint", "model", "version"]
        self.requests = Counter(
            "lakegate_serving_requests",
            "Requests answered, by endpoint, model, version and HTTP status.",
            [*labels, "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "lakegate_serving_errors",
            "Requests answered with an error, by endpoint, model, version and error code.",
            [*labels, "error_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lakegate_serving_request_duration_seconds",
            "Time from request to answer, by endpoint, model and version.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows_scored = Counter(
            "lakegate_serving_rows_scored",
            "Rows scored, by model and version.",
            ["model", "version"],
            registry=self.registry,
        )
        self.model_loads = Counter(
            "lakegate_serving_model_loads",
            "Model versions loaded from the registry.",
            ["model", "version"],
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "lakegate_serving_batch_requests",
            "Requests scored together in one model call, by model and version.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.loaded_models = Gauge(
            "lakegate_serving_loaded_models",
            "Model versions held in memory.",
            registry=self.registry,
        )

    def observe(
        self,
        endpoint: str,
        model: str,
        version: str,
        status: int,
        seconds: float,
        error_code: str | None = None,
    ) -> None:
        """Record one answered request."""
        self.requests.labels(endpoint, model, version, str(status)).inc()
        self.latency.labels(endpoint, model, version).observe(seconds)
        if error_code is not None:
            self.errors.labels(endpoint, model, version, error_code).inc()

    def exposition(self) -> bytes:
        """Everything in the Prometheus text format."""
        return generate_latest(self.registry)
