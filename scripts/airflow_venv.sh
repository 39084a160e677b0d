#!/usr/bin/env bash
# A virtualenv of its own for Apache Airflow, to run lakegate's generated DAGs locally
# (`airflow dags test`) and in tests/test_airflow_dag.py. Airflow is not a lakegate dependency:
# its DAG tasks run lakegate through spark-submit with lakegate's own interpreter, so the two
# environments never share packages.
#
# Usage: scripts/airflow_venv.sh [VENV_DIR]   (default ~/.cache/lakegate/airflow-venv)
# Prints the venv's path on its last line. Idempotent: a venv whose stamp names the same pins is
# kept as it is. Uses uv (.venv/bin/uv, else uv on PATH), else python -m venv + pip.
# Exit codes: 0 ready, 3 the packages could not be downloaded (no network), 2 anything else.
set -euo pipefail

AIRFLOW_VERSION=3.3.2
SPARK_PROVIDER_VERSION=6.3.4
PYTHON_VERSION=3.11
# Airflow's constraints files live on GitHub, which is not reachable from every machine that
# reaches PyPI; pinning Airflow and the provider exactly and letting the resolver pick the rest
# was enough here (airflow dags test passes). Set AIRFLOW_CONSTRAINTS=FILE to use one anyway.
PINS="apache-airflow==$AIRFLOW_VERSION apache-airflow-providers-apache-spark==$SPARK_PROVIDER_VERSION"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${LAKEGATE_AIRFLOW_VENV:-$HOME/.cache/lakegate/airflow-venv}}"
STAMP="$VENV/.lakegate-pins"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

if [ -x "$VENV/bin/airflow" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$PINS" ]; then
    echo "$VENV"
    exit 0
fi

fail() {  # exit 3 when the install failed for lack of network, else 2; the log goes to stderr
    cat "$LOG" >&2
    if grep -qiE "network|connect|fetch|request failed|resolve host|name resolution|timed out|offline|dns" "$LOG"; then
        echo "airflow_venv.sh: cannot download Airflow (no network to the package index)" >&2
        exit 3
    fi
    echo "airflow_venv.sh: installing $PINS into $VENV failed" >&2
    exit 2
}

UV=""
if [ -x "$ROOT/.venv/bin/uv" ]; then UV="$ROOT/.venv/bin/uv"; elif command -v uv >/dev/null; then UV=uv; fi
constraint=()
[ -n "${AIRFLOW_CONSTRAINTS:-}" ] && constraint=(--constraint "$AIRFLOW_CONSTRAINTS")
rm -f "$STAMP"
if [ -n "$UV" ]; then
    [ -x "$VENV/bin/python" ] || "$UV" venv --quiet --python "$PYTHON_VERSION" "$VENV" >"$LOG" 2>&1 || fail
    # shellcheck disable=SC2086
    "$UV" pip install --quiet --python "$VENV/bin/python" "${constraint[@]}" $PINS >"$LOG" 2>&1 || fail
else
    [ -x "$VENV/bin/python" ] || "python$PYTHON_VERSION" -m venv "$VENV" >"$LOG" 2>&1 || fail
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --quiet "${constraint[@]}" $PINS >"$LOG" 2>&1 || fail
fi
"$VENV/bin/airflow" version >"$LOG" 2>&1 || fail
echo "$PINS" >"$STAMP"
echo "$VENV"
