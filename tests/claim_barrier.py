"""Hold a lakegate run at its first claim of an output until every party has reached its own.

Two runs racing for one output really race only if both claim at the same moment; without a
hold, one JVM often starts so much later that the runs do not overlap at all. Each party
touches `<barrier>/<name>` at its first claim and waits for all `parties` files. It changes no
lakegate code: it wraps `StagedOutputs._claim` in the process it runs in.

In a test, `monkeypatch.setattr(StagedOutputs, "_claim", held_claim(...))` holds the in-process
run; `python tests/claim_barrier.py BARRIER NAME PARTIES lakegate-arguments...` runs
`lakegate` in a subprocess, held the same way. A party that is not a run (the test itself)
arrives by touching its file.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from spark_jobs.services.table_io import StagedOutputs

WAIT_SECONDS = 300.0


def wait_for_all(barrier: Path, parties: int, others_alive: Callable[[], bool]) -> None:
    """Wait until `parties` files are in `barrier`.

    Raises:
        TimeoutError: after WAIT_SECONDS, or at once when `others_alive()` turns false.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while len(list(barrier.iterdir())) < parties:
        if time.monotonic() > deadline or not others_alive():
            raise TimeoutError(f"the other parties never reached {barrier}")
        time.sleep(0.005)


def held_claim(
    barrier: Path, name: str, parties: int, others_alive: Callable[[], bool] = lambda: True
) -> Callable[[StagedOutputs, str], None]:
    """`StagedOutputs._claim`, held at the first claim of the process until all parties came."""
    claim = StagedOutputs._claim
    met: list[str] = []

    def claim_together(self: StagedOutputs, output: str) -> None:
        if not met:
            met.append(output)
            (barrier / name).touch()
            wait_for_all(barrier, parties, others_alive)
        claim(self, output)

    return claim_together


if __name__ == "__main__":
    barrier_, name_, parties_ = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    StagedOutputs._claim = held_claim(barrier_, name_, parties_)  # type: ignore[method-assign]
    from spark_jobs.cli import main

    sys.exit(main(sys.argv[4:]))
