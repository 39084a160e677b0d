"""A pytest plugin for the controlling process: where a long run spends its time, as it goes.

`--durations` prints only when the run ends; a run stopped by CI's time limit printed nothing but
dots. This plugin prints, while the run goes on, each test that took a minute or more (with the
run's elapsed time), and every five minutes the tests that have been running for more than four.
In a run of the fast tier (`-m "not slow"`, `make test-fast`) it ends by naming the tests whose
own call took `FAST_TIER_CALL_SECONDS` or more: mark them slow, or make them faster.
"""

from __future__ import annotations

import threading
import time

import pytest

LONG_TEST_SECONDS = 60.0
STILL_RUNNING_SECONDS = 240.0
REPORT_EVERY_SECONDS = 300.0
# A fast-tier test's call (fixtures apart) above this is named at the end of a fast-tier run
# (a process's first Spark job takes 10-15 s on an idle machine, whatever the test).
FAST_TIER_CALL_SECONDS = 20.0
FAST_TIER = "not slow"


class RunClock:
    """Start times of running tests (from xdist's workers or this process) and a reporter."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._started = time.monotonic()
        self._running: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fast_tier = config.getoption("markexpr", "") == FAST_TIER
        self._long_fast_calls: list[tuple[float, str]] = []

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
        """Say so when a test that took a minute or more ends; note long calls in the fast tier."""
        if report.when == "call" and self._fast_tier and report.duration >= FAST_TIER_CALL_SECONDS:
            self._long_fast_calls.append((report.duration, report.nodeid))
        if report.when != "teardown":
            return
        with self._lock:
            started = self._running.pop(report.nodeid, None)
        if started is not None and time.monotonic() - started >= LONG_TEST_SECONDS:
            self._say(f"{time.monotonic() - started:4.0f} s {report.nodeid}")

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """In a fast-tier run, name the tests too slow for it."""
        if not self._long_fast_calls:
            return
        terminalreporter.write_sep(
            "-", f"fast-tier tests whose call took {FAST_TIER_CALL_SECONDS:.0f} s or more"
        )
        for seconds, nodeid in sorted(self._long_fast_calls, reverse=True):
            terminalreporter.write_line(f"{seconds:5.1f} s {nodeid}")
        terminalreporter.write_line(
            "make test-fast is meant to stay under 5 minutes: mark these @pytest.mark.slow "
            "(make test still runs them) or make them faster."
        )

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
