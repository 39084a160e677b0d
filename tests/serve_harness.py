"""Servers the serve fault and fuzz tests start on loopback: the model server in a thread of
the test process (no 15 s subprocess start), an MLflow tracking server and redis-server as
processes the test can stop and start again on the same port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll `check` every 0.1 s; return the seconds it took, or fail naming `what`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {seconds} s")


class ThreadServer:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread (lifespan on)."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 60, "the model server's start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class Process:
    """A server process on a fixed port that a test stops and starts again."""

    def __init__(self, command: list[str], port: int, ready: Callable[[], bool], log: Path):
        self.command, self.port, self.ready, self.log = command, port, ready, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, seconds: float = 120) -> None:
        with self.log.open("a") as sink:
            self.process = subprocess.Popen(
                self.command, stdout=sink, stderr=sink, start_new_session=True
            )

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.command[:3]} exited: {self.log.read_text()[-2000:]}")
            return self.ready()

        try:
            wait_until(up, seconds, f"{' '.join(self.command[:3])} answering")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM to the process group it started (mlflow server runs uvicorn as a child)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self.process = None
        wait_until(lambda: _port_free(self.port), 30, f"port {self.port} closing")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def tracking_server(folder: Path) -> Process:
    """`mlflow server` over a sqlite store and an artifact folder in `folder`."""
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [
        mlflow,
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    return Process(
        command, port, lambda: _answers(f"http://127.0.0.1:{port}/health"), folder / "mlflow.log"
    )


def redis_server(folder: Path) -> Process:
    """redis-server on loopback, nothing saved to disk."""
    port = free_port()
    binary = shutil.which("redis-server") or "redis-server"
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return Process(command, port, ready, folder / "redis.log")
