"""`lakegate serve`: a real uvicorn server on loopback over a real MLflow sqlite registry."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
import yaml
from mlflow import MlflowClient
from model_fixtures import train, users_frame
from prometheus_client.parser import text_string_to_metric_families

from lakegate_config.settings import PROJECT_ROOT, Settings
from model_server.models import ModelCache
from model_server.server import check_bind
from online_store import open_online_store

MODEL = "restusers"
FEATURES = ["feature_1", "feature_2", "feature_3"]
VIEW = "rest_users"
TOKEN_VARIABLE = "LAKEGATE_TEST_SERVING_TOKEN"


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(log: Path, env: dict[str, str], *args: str) -> Server:
    port = _free_port()
    command = [sys.executable, "-m", "spark_jobs.cli", "serve", "--port", str(port), *args]
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()}")
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                return Server(process, url, log)
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the server did not answer within 60 s: {log.read_text()}")


def _stop(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    return server.process.wait(timeout=30)


@pytest.fixture(scope="module")
def versions(settings: Settings) -> dict[str, str]:
    """Version 1 classifies, version 2 regresses (so a moved alias is plain in the answers)."""
    first = train(settings, MODEL)
    second = train(settings, MODEL, task="regression")
    client = MlflowClient(settings.tracking_uri)
    client.set_registered_model_alias(MODEL, "champion", first.version)
    return {"classifier": str(first.version), "regressor": str(second.version)}


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return users_frame()


@pytest.fixture(scope="module")
def own_model(settings: Settings, versions: dict[str, str]):
    mlflow.set_tracking_uri(settings.tracking_uri)
    return {
        version: mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
        for version in versions.values()
    }


@pytest.fixture(scope="module")
def online_view(settings: Settings, users: pd.DataFrame) -> pd.DataFrame:
    store = open_online_store("sqlite", path=settings.online_store_path)
    columns = [("user_id", "bigint"), *((f, "double") for f in FEATURES), ("target", "bigint")]
    rows = users[[name for name, _ in columns]].itertuples(index=False, name=None)
    store.write_view(VIEW, ["user_id"], columns, [list(rows)], source="users_frame")
    store.close()
    return users


@pytest.fixture(scope="module")
def server(
    settings: Settings, versions: dict[str, str], online_view: pd.DataFrame, tmp_path_factory
) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    started = _start(log, dict(os.environ), "--env", "test", "--refresh-interval", "0.5")
    yield started
    _stop(started)


def _post(server: Server, path: str, body: object, **kwargs: object) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, timeout=30, **kwargs)


def _own(own_model, version: str, frame: pd.DataFrame) -> list:
    return pd.Series(own_model[version].predict(frame[FEATURES])).tolist()


def _metrics(server: Server) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize(
    "payload_format", ["dataframe_split", "dataframe_records", "inputs_records", "inputs_columns"]
)
@pytest.mark.slow
def test_predictions_equal_the_models_own_in_every_mlflow_payload_format(
    server, users, versions, own_model, payload_format
):
    frame = users.head(25)
    records = frame[FEATURES].to_dict(orient="records")
    body = {
        "dataframe_split": {
            "dataframe_split": frame[FEATURES].to_dict(orient="split", index=False)
        },
        "dataframe_records": {"dataframe_records": records},
        "inputs_records": {"inputs": records},
        "inputs_columns": {"inputs": frame[FEATURES].to_dict(orient="list")},
    }[payload_format]
    answer = _post(server, f"/{MODEL}/{versions['classifier']}/predict", body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "predictions": _own(own_model, versions["classifier"], frame),
        "model_name": MODEL,
        "model_version": versions["classifier"],
    }


def test_an_alias_answers_with_the_version_it_resolves_to(server, users, versions, own_model):
    answer = _post(
        server, f"/{MODEL}/champion/predict", {"inputs": users.iloc[0][FEATURES].to_dict()}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == versions["classifier"]
    assert answer.json()["predictions"] == _own(own_model, versions["classifier"], users.head(1))


def test_extra_fields_are_ignored_and_a_null_feature_gets_a_null_prediction(
    server, users, versions, own_model
):
    records = users.head(3).to_dict(orient="records")  # user_id, target, spend are extra
    records[1]["feature_2"] = None
    answer = _post(
        server, f"/{MODEL}/{versions['classifier']}/predict", {"dataframe_records": records}
    )
    assert answer.status_code == 200, answer.text
    own = _own(own_model, versions["classifier"], users.iloc[[0, 2]])
    assert answer.json()["predictions"] == [own[0], None, own[1]]


def test_a_missing_feature_is_a_400_naming_it(server, users, versions):
    body = {
        "dataframe_split": users.head(2)[["feature_1", "feature_3"]].to_dict(
            orient="split", index=False
        )
    }
    answer = _post(server, f"/{MODEL}/{versions['classifier']}/predict", body)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "BAD_REQUEST"
    assert "missing feature 'feature_2'" in answer.json()["message"]


@pytest.mark.parametrize("bad_value", ["high", True])
def test_a_mistyped_feature_is_a_400_naming_it_and_its_type(server, users, versions, bad_value):
    record = users.iloc[0][FEATURES].to_dict() | {"feature_3": bad_value}
    answer = _post(
        server, f"/{MODEL}/{versions['classifier']}/predict", {"dataframe_records": [record]}
    )
    assert answer.status_code == 400
    assert "feature 'feature_3' is double" in answer.json()["message"]


def test_a_record_lacking_a_feature_among_complete_ones_is_a_400_naming_the_record(
    server, users, versions
):
    records = users.head(3)[FEATURES].to_dict(orient="records")
    del records[2]["feature_1"]
    answer = _post(
        server, f"/{MODEL}/{versions['classifier']}/predict", {"dataframe_records": records}
    )
    assert answer.status_code == 400
    assert "record 3 has no feature 'feature_1'" in answer.json()["message"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/no_such_model/champion/predict", "no registered model named 'no_such_model'"),
        (f"/{MODEL}/99/predict", "has no version 99"),
        (f"/{MODEL}/bronze/predict", "has no alias 'bronze'"),
    ],
)
def test_an_unknown_model_version_or_alias_is_a_404(server, users, path, named):
    answer = _post(server, path, {"inputs": users.iloc[0][FEATURES].to_dict()})
    assert answer.status_code == 404
    assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert named in answer.json()["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"rows": []}', "exactly one of dataframe_split"),
        (
            b'{"dataframe_split": {"columns": ["feature_1"], "data": [[1, 2]]}}',
            "row 1 must be a list of 1",
        ),
        (b'{"dataframe_records": {"feature_1": 1}}', "must be a list"),
    ],
)
def test_malformed_bodies_are_400_with_a_message_and_no_stack_trace(server, versions, body, says):
    answer = requests.post(
        f"{server.url}/{MODEL}/{versions['classifier']}/predict", data=body, timeout=10
    )
    assert answer.status_code == 400
    assert says in answer.json()["message"]
    assert "Traceback" not in answer.text


def test_predict_by_key_scores_the_online_rows_of_those_keys(server, users, versions, own_model):
    keys = [5, 17, 3]
    answer = _post(
        server,
        f"/{MODEL}/{versions['classifier']}/predict-by-key",
        {"keys": keys, "feature_view": VIEW},
    )
    assert answer.status_code == 200, answer.text
    expected = _own(own_model, versions["classifier"], users.set_index("user_id").loc[keys])
    assert answer.json()["predictions"] == expected
    assert answer.json()["feature_view"] == VIEW


def test_predict_by_key_with_an_unknown_key_is_a_404_naming_it(server, versions):
    answer = _post(
        server,
        f"/{MODEL}/{versions['classifier']}/predict-by-key",
        {"keys": [5, 99999], "feature_view": VIEW},
    )
    assert answer.status_code == 404
    assert "no row for key 99999" in answer.json()["message"]


def test_predict_by_key_with_a_key_of_the_wrong_type_is_a_400(server, versions):
    answer = _post(
        server,
        f"/{MODEL}/{versions['classifier']}/predict-by-key",
        {"keys": ["abc"], "feature_view": VIEW},
    )
    assert answer.status_code == 400
    assert "key column 'user_id' is bigint" in answer.json()["message"]


def test_predict_by_key_on_an_unknown_view_is_a_404_naming_it(server, versions):
    answer = _post(
        server,
        f"/{MODEL}/{versions['classifier']}/predict-by-key",
        {"keys": [1], "feature_view": "nope"},
    )
    assert answer.status_code == 404
    assert "no feature view 'nope'" in answer.json()["message"]


def test_metrics_count_requests_errors_latency_and_rows_per_model_and_version(
    server, users, versions
):
    version = versions["classifier"]
    before = _metrics(server)
    ok = _post(
        server,
        f"/{MODEL}/{version}/predict",
        {"dataframe_records": users.head(7)[FEATURES].to_dict(orient="records")},
    )
    bad = _post(server, f"/{MODEL}/{version}/predict", {"dataframe_records": [{"feature_1": 1.0}]})
    assert (ok.status_code, bad.status_code) == (200, 400)
    after = _metrics(server)
    labels = {"endpoint": "predict", "model": MODEL, "version": version}

    def delta(name: str, **extra: str) -> float:
        return _sample(after, name, **extra) - _sample(before, name, **extra)

    assert delta("lakegate_serving_rows_scored_total", model=MODEL, version=version) == 7
    assert delta("lakegate_serving_requests_total", **labels, status="200") == 1
    assert delta("lakegate_serving_requests_total", **labels, status="400") == 1
    assert delta("lakegate_serving_errors_total", **labels, error_code="BAD_REQUEST") == 1
    assert delta("lakegate_serving_request_duration_seconds_count", **labels) == 2
    assert delta("lakegate_serving_request_duration_seconds_bucket", **labels, le="+Inf") == 2
    assert _sample(after, "lakegate_serving_loaded_models") >= 1


def test_eight_concurrent_clients_all_get_the_right_answers(server, users, versions, own_model):
    version = versions["classifier"]
    expected = _own(own_model, version, users)

    def one(row: int) -> tuple[int, object]:
        record = users.iloc[row][FEATURES].to_dict()
        answer = _post(server, f"/{MODEL}/{version}/predict", {"inputs": record})
        return row, answer.json()["predictions"][0]

    with ThreadPoolExecutor(8) as pool:
        answers = dict(pool.map(one, range(len(users))))
    assert [answers[row] for row in range(len(users))] == expected


def test_health_lists_what_is_served(server, versions):
    answer = requests.get(f"{server.url}/health", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert f"{MODEL}@champion" in answer.json()["serving"]


def test_moving_champion_changes_what_is_served_without_a_restart(
    server, settings, users, versions, own_model
):
    client = MlflowClient(settings.tracking_uri)
    body = {"dataframe_records": users.head(5)[FEATURES].to_dict(orient="records")}
    assert (
        _post(server, f"/{MODEL}/champion/predict", body).json()["model_version"]
        == versions["classifier"]
    )
    client.set_registered_model_alias(MODEL, "champion", versions["regressor"])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            answer = _post(server, f"/{MODEL}/champion/predict", body).json()
            if answer["model_version"] == versions["regressor"]:
                break
            time.sleep(0.2)
        assert answer["model_version"] == versions["regressor"]
        assert answer["predictions"] == _own(own_model, versions["regressor"], users.head(5))
        assert server.process.poll() is None  # the same process, no restart
    finally:
        client.set_registered_model_alias(MODEL, "champion", versions["classifier"])


def test_the_cache_keeps_at_most_max_models_versions_and_removes_the_evicted_files(
    settings, versions
):
    cache = ModelCache(
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        refresh_seconds=60,
        max_models=1,
        max_bytes=10**9,
    )
    try:
        first = cache.get(MODEL, versions["classifier"])
        second = cache.get(MODEL, versions["regressor"])
        assert [(m.name, m.version) for m in cache.loaded()] == [(MODEL, versions["regressor"])]
        assert not first.folder.exists()
        assert second.folder.exists()
        assert cache.get(MODEL, versions["regressor"]) is second
    finally:
        cache.close()


def test_listing_what_is_served_while_workers_resolve_new_references_never_fails(
    settings, versions
):
    """`/health` lists the references while request threads add new ones: no error, ever."""
    client = MlflowClient(settings.tracking_uri)
    aliases = [f"race{i}" for i in range(30)]
    for alias in aliases:
        client.set_registered_model_alias(MODEL, alias, versions["classifier"])
    cache = ModelCache(
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        refresh_seconds=60,
        max_models=2,
        max_bytes=10**9,
    )
    failures: list[BaseException] = []
    done = threading.Event()

    def list_served() -> int:
        listed = 0
        while not done.is_set() and listed < 200_000:
            try:
                cache.served_references()
                cache.loaded()
            except Exception as exc:  # what /health would answer 500 for
                failures.append(exc)
                return listed
            listed += 1
        return listed

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        with ThreadPoolExecutor(6) as pool:
            listers = [pool.submit(list_served) for _ in range(2)]
            list(pool.map(lambda alias: cache.get(MODEL, alias), aliases, timeout=120))
            done.set()
            assert all(lister.result(timeout=60) > 0 for lister in listers)
        served = cache.served_references()
        assert {f"{MODEL}@{alias}" for alias in aliases} <= set(served)
    finally:
        sys.setswitchinterval(interval)
        done.set()
        cache.close()
        for alias in aliases:
            client.delete_registered_model_alias(MODEL, alias)
    assert failures == []


def test_the_online_store_is_opened_once_however_many_requests_need_it_first(settings, online_view):
    from model_server.app import ServingState

    state = ServingState(settings, refresh_seconds=60)
    start = threading.Barrier(8)

    def first_use() -> int:
        start.wait(timeout=30)
        return id(state.store)

    try:
        with ThreadPoolExecutor(8) as pool:
            opened = set(pool.map(lambda _: first_use(), range(8), timeout=60))
        assert len(opened) == 1
        assert state.store.lookup(VIEW, [1])[0]["user_id"] == 1
    finally:
        state.close()


def test_a_bind_beyond_loopback_without_a_token_is_refused(settings):
    from lakegate_errors import UserError

    with pytest.raises(UserError, match="beyond loopback, without authentication"):
        check_bind("0.0.0.0", settings)
    check_bind("127.0.0.1", settings)
    check_bind("localhost", settings)
    result = subprocess.run(
        [sys.executable, "-m", "spark_jobs.cli", "serve", "--env", "test", "--host", "0.0.0.0"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def token_server(settings, versions, tmp_path_factory) -> Iterator[Server]:
    conf = tmp_path_factory.mktemp("conf")
    document = yaml.safe_load((PROJECT_ROOT / "conf" / "test.yaml").read_text())
    document["serving"] = {"auth_token_env": TOKEN_VARIABLE}
    (conf / "test.yaml").write_text(yaml.safe_dump(document))
    env = dict(os.environ, LAKEGATE_CONF_DIR=str(conf), **{TOKEN_VARIABLE: "s3cret-token"})
    started = _start(conf / "serve.log", env, "--env", "test")
    yield started
    _stop(started)


@pytest.mark.slow
def test_a_configured_token_is_required_as_a_bearer_header(token_server, users, versions):
    path = f"/{MODEL}/{versions['classifier']}/predict"
    body = {"inputs": users.iloc[0][FEATURES].to_dict()}
    assert _post(token_server, path, body).status_code == 401
    wrong = _post(token_server, path, body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert requests.get(f"{token_server.url}/metrics", timeout=10).status_code == 401
    right = _post(token_server, path, body, headers={"Authorization": "Bearer s3cret-token"})
    assert right.status_code == 200, right.text
    assert requests.get(f"{token_server.url}/health", timeout=10).status_code == 200


def test_sigterm_stops_the_server_cleanly_and_closes_the_port(token_server):
    assert _stop(token_server) == 0
    assert "model server stopped" in token_server.log.read_text()
    assert "Traceback" not in token_server.log.read_text()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{token_server.url}/health", timeout=2)


def test_the_openapi_document_is_published_with_every_endpoint_and_its_errors(server):
    document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert set(document["paths"]) == {
        "/{model}/{reference}/predict",
        "/{model}/{reference}/predict-by-key",
        "/health",
        "/metrics",
    }
    predict = document["paths"]["/{model}/{reference}/predict"]["post"]
    assert {"200", "400", "401", "404", "500", "503"} <= set(predict["responses"])
    assert "requestBody" in predict
    unknown = requests.get(f"{server.url}/no/such/path", timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_concurrent_requests_each_get_their_own_rows_scored_and_are_counted_per_call(
    server, users, versions, own_model
):
    version = versions["classifier"]
    before = _metrics(server)
    spans = [(start, start + 1 + start % 7) for start in range(0, 160, 10)]

    def one(span: tuple[int, int]) -> list:
        rows = users.iloc[span[0] : span[1]][FEATURES].to_dict(orient="records")
        answer = _post(server, f"/{MODEL}/{version}/predict", {"dataframe_records": rows})
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, spans))
    assert answers == [_own(own_model, version, users.iloc[a:b]) for a, b in spans]
    after = _metrics(server)
    labels = {"model": MODEL, "version": version}
    calls = _sample(after, "lakegate_serving_batch_requests_count", **labels) - _sample(
        before, "lakegate_serving_batch_requests_count", **labels
    )
    requests_scored = _sample(after, "lakegate_serving_batch_requests_sum", **labels) - _sample(
        before, "lakegate_serving_batch_requests_sum", **labels
    )
    assert requests_scored == len(spans)
    assert 1 <= calls <= len(spans)


def test_an_empty_record_list_gets_no_predictions(server, versions):
    answer = _post(server, f"/{MODEL}/{versions['classifier']}/predict", {"dataframe_records": []})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == []


def test_a_request_the_model_refuses_fails_alone_among_those_scored_with_it():
    import asyncio

    from model_server.batching import ScoringQueue

    def scorer(frame: pd.DataFrame) -> pd.Series:
        if (frame["x"] < 0).any():
            raise ValueError("negative x")
        return frame["x"] * 2

    async def three_at_once() -> tuple[list, ScoringQueue]:
        queue = ScoringQueue()
        frames = [pd.DataFrame({"x": [value]}) for value in (1.0, -1.0, 3.0)]
        results = await asyncio.gather(
            *(queue.score(("m", "1"), scorer, frame) for frame in frames),
            return_exceptions=True,
        )
        return results, queue

    results, queue = asyncio.run(three_at_once())
    assert (queue.calls, queue.requests) == (1, 3)  # queued together, one drain
    assert results[0].tolist() == [2.0]
    assert isinstance(results[1], ValueError)
    assert results[2].tolist() == [6.0]
