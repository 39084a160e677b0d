"""A pytest plugin for the controlling process: where a long run spends its time, as it goes.

`--durations` prints only when the run ends; a run stopped by CI's time limit printed nothing but
dots. This plugin prints, while the run goes on, each test that took a minute or more (with the
run's elapsed time), and every five minutes the tests that have been running for more than four.
"""

from __future__ import annotations

import threading
import time

import pytest

LONG_TEST_SECONDS = 60.0
STILL_RUNNING_SECONDS = 240.0
REPORT_EVERY_SECONDS = 300.0


class RunClock:
    """Start times of running tests (from xdist's workers or this process) and a reporter."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._started = time.monotonic()
        self._running: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _say(self, text: str) -> None:
        reporter = self._config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            elapsed = time.monotonic() - self._started
            reporter.write_line(f"[run clock {elapsed / 60:5.1f} min] {text}")

    @pytest.hookimpl
    def pytest_sessionstart(self) -> None:
        """Start the thread that names tests running for long."""
        threading.Thread(target=self._report_stragglers, name="run-clock", daemon=True).start()

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """Note when a test starts (xdist calls this in the controller for each worker's test)."""
        with self._lock:
            self._running[nodeid] = time.monotonic()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Say so when a test that took a minute or more ends."""
        if report.when != "teardown":
            return
        with self._lock:
            started = self._running.pop(report.nodeid, None)
        if started is not None and time.monotonic() - started >= LONG_TEST_SECONDS:
            self._say(f"{time.monotonic() - started:4.0f} s {report.nodeid}")

    @pytest.hookimpl
    def pytest_unconfigure(self) -> None:
        """Stop the reporting thread."""
        self._stop.set()

    def _report_stragglers(self) -> None:
        while not self._stop.wait(REPORT_EVERY_SECONDS):
            now = time.monotonic()
            with self._lock:
                long_running = [
                    (now - started, nodeid)
                    for nodeid, started in self._running.items()
                    if now - started >= STILL_RUNNING_SECONDS
                ]
            for seconds, nodeid in sorted(long_running, reverse=True):
                self._say(f"still running after {seconds:.0f} s: {nodeid}")


def install(config: pytest.Config) -> None:
    """Register the clock in the controlling process (not in xdist's workers)."""
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(RunClock(config), "lakegate-run-clock")
