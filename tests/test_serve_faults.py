"""`lakegate serve` under faults: an alias moved under load, the registry gone and back, the
online store (SQLite, Redis) gone and back.

A real MLflow tracking server (started here, stopped and started again), real redis-server,
the real app served by uvicorn on loopback in this process; every load loop is bounded in
requests and seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from model_fixtures import train, users_frame
from serve_harness import Process, ThreadServer, redis_server, tracking_server, wait_until

from lakegate_config.settings import Settings
from model_server.app import create_app
from model_server.models import REGISTRY_CLIENT_DEFAULTS
from online_store import open_online_store
from spark_jobs.services.training import mlflow_stores

pytestmark = pytest.mark.slow

MODEL = "faultusers"
FEATURES = ["feature_1", "feature_2", "feature_3"]
VIEW = "fault_users"
REFRESH = 1.0
CLIENTS = 16


# MLflow's server-side job execution (on by default over a database store) starts a job runner
# and seven huey consumers, each a Python importing MLflow, at every start: no test here runs
# a job, so each start (there are two) is one process instead of ten.
NO_SERVER_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    server = tracking_server(tmp_path_factory.mktemp("tracking"))
    with pytest.MonkeyPatch.context() as env:  # the restart in a test inherits it too
        for variable, value in NO_SERVER_JOBS.items():
            env.setenv(variable, value)
        try:  # a fresh store runs MLflow's migrations: minutes on a loaded machine
            server.start(300)
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def registry(settings: Settings, tracking: Process) -> Iterator[Settings]:
    """Settings whose registry is the tracking server, with the serving client's retry bounds."""
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("MLFLOW_REGISTRY_URI", raising=False)
        for variable, value in REGISTRY_CLIENT_DEFAULTS.items():
            env.setenv(variable, value)
        mlflow_conf = settings.mlflow.model_copy(
            update={"tracking_uri": f"http://127.0.0.1:{tracking.port}", "registry_uri": None}
        )
        yield settings.model_copy(update={"mlflow": mlflow_conf})
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def versions(registry: Settings) -> dict[str, str]:
    """Version 1 classifies (0/1), version 2 regresses (floats): answers tell them apart."""
    first = train(registry, MODEL)
    second = train(registry, MODEL, task="regression")
    return {"classifier": str(first.version), "regressor": str(second.version)}


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return users_frame()


@pytest.fixture(scope="module")
def expected(registry: Settings, versions: dict[str, str], users: pd.DataFrame) -> dict:
    """Each version's own predictions for every user row."""
    own = {}
    with mlflow_stores(registry.tracking_uri, registry.registry_uri):  # train leaves no URI set
        for version in versions.values():
            model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
            own[version] = pd.Series(model.predict(users[FEATURES])).tolist()
    return own


def _write_view(store_kind: str, users: pd.DataFrame, *, path: Path | None = None, url=None):
    store = open_online_store(store_kind, path=path, url=url)
    columns = [("user_id", "bigint"), *((f, "double") for f in FEATURES)]
    rows = list(users[[name for name, _ in columns]].itertuples(index=False, name=None))
    store.write_view(VIEW, ["user_id"], columns, [rows], source="users_frame")
    store.close()


def _serving(registry: Settings, **online: Any) -> Settings:
    return registry.model_copy(
        update={
            "online_store": registry.online_store.model_copy(update=online),
            "serving": registry.serving.model_copy(update={"feature_view": VIEW}),
        }
    )


def _champion(registry: Settings, version: str) -> None:
    MlflowClient(registry.tracking_uri).set_registered_model_alias(MODEL, "champion", version)


def _post(url: str, body: object) -> requests.Response:
    return requests.post(url, json=body, timeout=30)


@dataclass
class Answer:
    row: int
    started: float
    finished: float
    status: int
    version: str | None
    prediction: Any


async def _load(
    url: str, users: pd.DataFrame, until: Callable[[list[Answer]], bool], seconds: float
) -> list[Answer]:
    """CLIENTS clients posting one user each to `url` until `until(answers)` or `seconds` pass."""
    answers: list[Answer] = []
    deadline = time.monotonic() + seconds
    records = users[FEATURES].to_dict(orient="records")

    async def client(number: int) -> None:
        rng = random.Random(number)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            while time.monotonic() < deadline and not until(answers) and len(answers) < 50_000:
                row = rng.randrange(len(records))
                started = time.monotonic()
                try:
                    async with session.post(url, json={"inputs": records[row]}) as response:
                        body = json.loads(await response.read())
                        status = response.status
                except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                    body, status = {"error": str(exc)}, 0
                prediction = (body.get("predictions") or [None])[0]
                answers.append(
                    Answer(
                        row,
                        started,
                        time.monotonic(),
                        status,
                        body.get("model_version"),
                        prediction,
                    )
                )

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return answers


@dataclass
class AliasMove:
    """Moves champion 2 s into the load; notes when the new version first answered."""

    registry: Settings
    new: str
    started: float
    moved_at: float | None = None
    switched_at: float | None = None
    seen: int = 0

    def __call__(self, answers: list[Answer]) -> bool:
        now = time.monotonic()
        if self.moved_at is None and now - self.started > 2:
            _champion(self.registry, self.new)
            self.moved_at = time.monotonic()
        for answer in answers[self.seen :]:
            if answer.version == self.new and self.switched_at is None:
                self.switched_at = answer.finished
        self.seen = len(answers)
        return self.switched_at is not None and now - self.switched_at > 2


def test_an_alias_moved_under_load_fails_no_request_and_each_answer_names_its_scorer(
    registry, versions, users, expected, tmp_path
):
    old, new = versions["classifier"], versions["regressor"]
    _champion(registry, old)
    app = create_app(_serving(registry, path=tmp_path / "none.db"), alias_refresh_seconds=REFRESH)
    with ThreadServer(app) as server:
        one = {"inputs": users.iloc[0][FEATURES].to_dict()}
        # The new version loaded before the move: the switch then waits for the refresh only.
        assert _post(f"{server.url}/{MODEL}/{new}/predict", one).status_code == 200
        assert _post(f"{server.url}/{MODEL}/champion/predict", one).json()["model_version"] == old
        move = AliasMove(registry, new, time.monotonic())
        answers = asyncio.run(_load(f"{server.url}/{MODEL}/champion/predict", users, move, 30))
    _champion(registry, old)

    failed = [a for a in answers if a.status != 200]
    assert failed == [], failed[:5]
    assert {a.version for a in answers} == {old, new}
    # Each answer scored by the version it names (0/1 against floats: a mix-up is far off). A
    # row scored in a batch with others may differ from a lone call in the last bit (BLAS).
    wrong = [
        a for a in answers if a.prediction != pytest.approx(expected[a.version][a.row], rel=1e-12)
    ]
    assert wrong == [], wrong[:5]
    assert move.moved_at is not None and move.switched_at is not None
    switch_seconds = move.switched_at - move.moved_at
    # Within the refresh interval plus one re-resolution (three registry calls over HTTP,
    # about a second each at a load of 20 on 2 cores).
    assert switch_seconds <= REFRESH + 3.0, switch_seconds
    late = [a for a in answers if a.started > move.switched_at and a.version != new]
    assert late == [], late[:5]  # once switched, never back
    print(f"alias move: {len(answers)} requests, 0 failed, switch after {switch_seconds:.2f} s")


def test_the_registry_gone_keeps_the_last_good_version_says_degraded_and_recovers(
    registry, tracking, versions, users, expected, tmp_path
):
    old, new = versions["classifier"], versions["regressor"]
    _champion(registry, old)
    app = create_app(_serving(registry, path=tmp_path / "none.db"), alias_refresh_seconds=REFRESH)
    records = users[FEATURES].to_dict(orient="records")
    with ThreadServer(app) as server:
        url = f"{server.url}/{MODEL}/champion/predict"
        assert _post(url, {"inputs": records[0]}).json()["model_version"] == old
        tracking.stop()
        try:
            wait_until(
                lambda: (
                    requests.get(f"{server.url}/health", timeout=10).json()["status"] == "degraded"
                ),
                30,
                "/health saying degraded",
            )
            health = requests.get(f"{server.url}/health", timeout=10).json()
            problem = health["problems"][f"{MODEL}@champion"]
            assert f"serving version {old}" in problem
            assert "registry" in problem and str(tracking.port) in problem
            served = [_post(url, {"inputs": records[row]}) for row in range(100)]
            assert [a.status_code for a in served] == [200] * 100
            assert {a.json()["model_version"] for a in served} == {old}
            assert [a.json()["predictions"][0] for a in served] == expected[old][:100]
        finally:
            tracking.start(300)
        wait_until(
            lambda: requests.get(f"{server.url}/health", timeout=10).json()["status"] == "ok",
            30,
            "/health saying ok again",
        )
        assert requests.get(f"{server.url}/health", timeout=10).json()["problems"] == {}
        _champion(registry, new)  # the refresher works again: the move is served
        wait_until(
            lambda: _post(url, {"inputs": records[0]}).json()["model_version"] == new,
            REFRESH + 10,
            "the moved alias served after the registry returned",
        )
    _champion(registry, old)


def _by_key_and_others(server: ThreadServer, version: str, users: pd.DataFrame) -> dict:
    by_key = _post(f"{server.url}/{MODEL}/{version}/predict-by-key", {"keys": [3, 5]})
    predict = _post(
        f"{server.url}/{MODEL}/{version}/predict", {"inputs": users.iloc[0][FEATURES].to_dict()}
    )
    health = requests.get(f"{server.url}/health", timeout=10)
    metrics = requests.get(f"{server.url}/metrics", timeout=10)
    return {
        "by_key": by_key,
        "others": [predict.status_code, health.status_code, metrics.status_code],
    }


def _unavailable(answer: requests.Response, *words: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    for word in words:
        assert word in answer.json()["message"]
    assert "Traceback" not in answer.text


def test_the_sqlite_store_removed_or_corrupt_is_a_503_for_by_key_only_and_comes_back(
    registry, versions, users, expected, tmp_path
):
    version = versions["classifier"]
    path = tmp_path / "online.db"
    _write_view("sqlite", users, path=path)
    with ThreadServer(create_app(_serving(registry, path=path))) as server:
        first = _by_key_and_others(server, version, users)
        assert first["by_key"].json()["predictions"] == [expected[version][i] for i in (2, 4)]
        for leftover in path.parent.glob("online.db*"):
            leftover.unlink()
        removed = _by_key_and_others(server, version, users)
        _unavailable(removed["by_key"], str(path), "missing", "lakegate materialize")
        assert removed["others"] == [200, 200, 200]
        path.write_bytes(b"this is not a SQLite database\n" * 100)
        corrupt = _by_key_and_others(server, version, users)
        _unavailable(corrupt["by_key"], str(path))
        assert corrupt["others"] == [200, 200, 200]
        path.unlink()
        _write_view("sqlite", users, path=path)
        back = _by_key_and_others(server, version, users)
        assert back["by_key"].status_code == 200, back["by_key"].text
        assert back["by_key"].json()["predictions"] == [expected[version][i] for i in (2, 4)]


def test_redis_stopped_is_a_503_for_by_key_only_and_lookups_resume_when_it_returns(
    registry, versions, users, expected, tmp_path
):
    version = versions["classifier"]
    redis = redis_server(tmp_path)
    redis.start(30)
    url = f"redis://127.0.0.1:{redis.port}/0"
    try:
        _write_view("redis", users, url=url)
        with ThreadServer(create_app(_serving(registry, kind="redis", url=url))) as server:
            first = _by_key_and_others(server, version, users)
            assert first["by_key"].status_code == 200, first["by_key"].text
            redis.stop()
            stopped = _by_key_and_others(server, version, users)
            _unavailable(stopped["by_key"], url)
            assert stopped["others"] == [200, 200, 200]
            redis.start(30)
            _write_view("redis", users, url=url)  # nothing was saved to disk
            back = _by_key_and_others(server, version, users)
            assert back["by_key"].status_code == 200, back["by_key"].text
            assert back["by_key"].json()["predictions"] == [expected[version][i] for i in (2, 4)]
    finally:
        redis.stop()
