"""`lakegate serve` against its own OpenAPI document, fuzzed with schemathesis, and model names
built to escape: nothing answers 5xx, nothing answers off the document, and a hostile name
never reaches the registry (nor, so, the filesystem the registry's artifacts land in).

The real app on uvicorn on loopback, a real MLflow sqlite registry with one model; examples
are bounded so the module runs in well under a minute once the model is trained.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from model_fixtures import train, users_frame
from schemathesis import GenerationMode
from serve_harness import ThreadServer

from lakegate_config.settings import Settings
from model_server.app import create_app
from model_server.models import ModelCache
from online_store import open_online_store

pytestmark = pytest.mark.slow

MODEL = "fuzzusers"
FEATURES = ["feature_1", "feature_2", "feature_3"]
VIEW = "fuzz_users"
EXAMPLES = 25
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def asked(settings: Settings) -> Iterator[list[tuple[str, str]]]:
    """Every (name, reference) the server asks the registry about, recorded as it asks."""
    recorded: list[tuple[str, str]] = []
    real = ModelCache._resolve_model

    def recording(self: ModelCache, name: str, reference: str) -> Any:
        recorded.append((name, reference))
        return real(self, name, reference)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ModelCache, "_resolve_model", recording)
        yield recorded


@pytest.fixture(scope="module")
def served(settings: Settings, asked: list, tmp_path_factory) -> Iterator[ThreadServer]:
    version = train(settings, MODEL).version
    assert str(version) == "1"
    path = tmp_path_factory.mktemp("fuzz-store") / "online.db"
    store = open_online_store("sqlite", path=path)
    users = users_frame()
    columns = [("user_id", "bigint"), *((f, "double") for f in FEATURES)]
    rows = list(users[[c for c, _ in columns]].itertuples(index=False, name=None))
    store.write_view(VIEW, ["user_id"], columns, [rows], source="users_frame")
    store.close()
    serving = settings.model_copy(
        update={
            "online_store": settings.online_store.model_copy(update={"path": path}),
            "serving": settings.serving.model_copy(update={"feature_view": VIEW}),
        }
    )
    with ThreadServer(create_app(serving, alias_refresh_seconds=60)) as server:
        yield server


@pytest.fixture(scope="module")
def served_schema(served: ThreadServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json")


# A body that fits the document may still lack the model's features: the document is one for
# every model, a payload is judged against the served model's signature (a 400 naming the
# feature). Every other check runs: no 5xx, statuses, content types, headers and bodies as
# documented, and schema-invalid requests refused.
NOT_CHECKED = [schemathesis.checks.positive_data_acceptance]
OPERATIONS = [
    ("POST", "/{model}/{reference}/predict"),
    ("POST", "/{model}/{reference}/predict-by-key"),
    ("GET", "/health"),
    ("GET", "/metrics"),
]


def _fuzz(operation: Any, mode: GenerationMode, **fixed: Any) -> None:
    """Call `operation` with generated requests; every answer checked against the document."""

    @given(case=operation.as_strategy(mode, **fixed))
    @FUZZ_SETTINGS
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(excluded_checks=NOT_CHECKED)

    check()


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [
        *((method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS),
        # /health and /metrics take no input: nothing to make invalid.
        *((method, path, GenerationMode.NEGATIVE) for method, path in OPERATIONS[:2]),
    ],
    ids=str,
)
def test_every_endpoint_answers_generated_requests_as_its_document_says(
    served_schema, method, path, mode
):
    _fuzz(served_schema[path][method], mode)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize("path", [path for method, path in OPERATIONS if method == "POST"])
def test_generated_bodies_for_the_served_model_answer_as_documented(served_schema, path, mode):
    _fuzz(served_schema[path]["POST"], mode, path_parameters={"model": MODEL, "reference": "1"})


HOSTILE = [
    "..",
    "...",
    "..%2F..%2Fetc%2Fpasswd",
    "a%2Fb",
    "%2F",
    "%2e%2e",
    "a%00b",
    "a%5Cb",
    "x" * 300,
    "%25",
    "a'b",
    "name%0A",
]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("where", ["model", "reference"])
def test_a_hostile_model_name_or_reference_never_reaches_the_registry(served, asked, name, where):
    model, reference = (name, "1") if where == "model" else (MODEL, name)
    asked.clear()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:  # sent as written: no client normalizes the dots or decodes the escapes
        connection.request(
            "POST",
            f"/{model}/{reference}/predict",
            body=b'{"inputs": {"feature_1": 1.0, "feature_2": 1.0, "feature_3": 1.0}}',
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        body = response.read().decode()
    finally:
        connection.close()
    assert response.status in (400, 404), body
    assert '"error_code"' in body and "Traceback" not in body
    decoded = urllib.parse.unquote(name)  # what the route sees
    assert all(decoded not in (n, r) for n, r in asked), asked
    assert all(".." not in n and "/" not in n for n, _ in asked), asked


def test_the_served_model_still_answers_after_the_fuzzing(served):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.request(
            "POST",
            f"/{MODEL}/1/predict-by-key",
            body=b'{"keys": [1, 2]}',
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 200, response.read()
    finally:
        connection.close()
