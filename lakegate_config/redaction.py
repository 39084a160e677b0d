"""Credentials hidden before a URI reaches a log line, a report or an HTTP response."""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]+@")


def redact(text: str) -> str:
    """Hide credentials in URIs: `scheme://user:secret@host` becomes `scheme://user:***@host`."""
    return _CREDENTIALS.sub(r"\1:***@", text)
