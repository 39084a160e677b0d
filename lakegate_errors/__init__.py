"""The one error hierarchy: every error lakegate reports to people declares its exit code.

Every room (`checks`, `udfs`, `spark_jobs`, the servers) raises subclasses of these bases and
nothing else for problems a person can fix; the CLI, the pipeline and the servers map any of them
with `exit_code_of`. Anything else is a bug in lakegate (exit 70, stack trace printed).
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """What a lakegate command's exit status means."""

    OK = 0
    CHECKS_FAILED = 1  # an error-level check failed; outputs were still written
    USAGE = 2  # bad arguments, configuration, suite, input or model; nothing written
    ENVIRONMENT = 3  # Spark, the Deequ jar or the tracking store could not be reached
    ROWS_LOST = 4  # rows_in != rows_valid + rows_quarantined; outputs discarded
    CONFLICT = 5  # another run was writing the same output; this run's writes were rolled back
    INTERNAL = 70  # a bug in lakegate: the stack trace is printed


class LakegateError(Exception):
    """Base of every error reported as a message (no stack trace) with a declared exit code."""

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE


class UserError(LakegateError):
    """A problem in what the user gave us (arguments, suite, config, input, model call)."""

    exit_code = ExitCode.USAGE


class EnvironmentProblem(LakegateError):
    """Something outside the input is missing or unreachable (jars, Spark, tracking store)."""

    exit_code = ExitCode.ENVIRONMENT


class RowsLost(LakegateError):
    """The outputs do not add up to the input; never expected, always fatal."""

    exit_code = ExitCode.ROWS_LOST


class WriteConflict(LakegateError):
    """Another run writes the same output at the same time; this run stopped and wrote nothing.

    Exit 5: the other run's outputs stand whole. Running the job again once the other run has
    finished is the fix (it is not an error in the input, and not an environment failure).
    """

    exit_code = ExitCode.CONFLICT


class ChecksFailed(LakegateError):
    """Error-level checks failed in a way that stops what comes after (a pipeline step)."""

    exit_code = ExitCode.CHECKS_FAILED


def exit_code_of(exc: BaseException) -> ExitCode | None:
    """The exit code an error declares, or None when it is a bug (not a `LakegateError`)."""
    if isinstance(exc, LakegateError):
        return ExitCode(exc.exit_code)
    return None


__all__ = [
    "ChecksFailed",
    "EnvironmentProblem",
    "ExitCode",
    "LakegateError",
    "RowsLost",
    "UserError",
    "WriteConflict",
    "exit_code_of",
]
