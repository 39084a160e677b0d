#!/usr/bin/env bash
# datacontract-cli 1.2.x as an oracle for lakegate's data-contract mapping (issue 35).
#
# Creates its own virtualenv (never lakegate's .venv) with datacontract-cli[duckdb], then runs
# tests/datacontract_oracle.py: the corpus of tests/test_contracts.py on the same parquet file,
# lakegate (Spark + Deequ) against datacontract-cli (DuckDB), pass/fail per rule. Exits 1 on a
# difference docs/contracts.md does not document.
#
#   scripts/datacontract_oracle.sh [WORK_DIR]
#   DATACONTRACT_VENV=...   where the virtualenv goes (default ~/.cache/lakegate/venv-datacontract)
#   DATACONTRACT_VERSION=.. the datacontract-cli version (default 1.2.8)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DATACONTRACT_VENV:-$HOME/.cache/lakegate/venv-datacontract}"
VERSION="${DATACONTRACT_VERSION:-1.2.8}"
WORK="${1:-$(mktemp -d -t lakegate-datacontract-XXXXXX)}"
PYTHON="${PYTHON:-python3}"

if ! "$VENV/bin/datacontract" --version 2>/dev/null | grep -qx "$VERSION"; then
  echo "installing datacontract-cli[duckdb]==$VERSION into $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  if command -v uv >/dev/null 2>&1; then
    uv pip install --quiet --python "$VENV/bin/python" "datacontract-cli[duckdb]==$VERSION"
  else
    "$VENV/bin/pip" install --quiet "datacontract-cli[duckdb]==$VERSION"
  fi
fi
cd "$ROOT"
exec "$ROOT/.venv/bin/python" tests/datacontract_oracle.py "$VENV/bin/datacontract" "$WORK"
