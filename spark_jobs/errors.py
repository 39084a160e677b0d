"""Exit codes and the errors a job reports to people without a stack trace."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a lakegate command's exit status means."""

    OK = 0
    CHECKS_FAILED = 1  # an error-level check failed; outputs were still written
    USAGE = 2  # bad arguments, configuration, suite, input or model; nothing written
    ENVIRONMENT = 3  # Spark, the Deequ jar or the tracking store could not be reached
    ROWS_LOST = 4  # rows_in != rows_valid + rows_quarantined; outputs discarded
    INTERNAL = 70  # a bug in lakegate: the stack trace is printed


class UserError(Exception):
    """A problem in what the user gave us; the message names it and the fix."""

    exit_code = ExitCode.USAGE


class EnvironmentProblem(UserError):
    """Something outside the input is missing or unreachable."""

    exit_code = ExitCode.ENVIRONMENT


class RowsLost(Exception):
    """The outputs do not add up to the input; never expected, always fatal."""

    exit_code = ExitCode.ROWS_LOST
