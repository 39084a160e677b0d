#!/usr/bin/env bash
# Install lakegate where there is no checkout to run `make setup` in: a container image (the
# Dockerfile runs only this script), a cluster node, a VM. It does what `make setup` does:
#
#   1. a Python 3.11 virtualenv at PREFIX/venv, with uv (the version the Makefile pins);
#   2. a lakegate wheel, built from a source folder (this repository by default) or an sdist,
#      or given ready, installed non-editable with its pinned dependencies (and --extras);
#   3. the configuration (conf/) and, from a source folder, the sample (data/items.csv and
#      checks/examples/) under PREFIX, and
#      PREFIX/bin/lakegate, which runs the venv's lakegate with LAKEGATE_CONF_DIR=PREFIX/conf
#      (so relative paths in conf resolve against PREFIX, the state folder is PREFIX/.lakegate);
#   4. `python -m spark_jobs.jars`: the Deequ and Delta jars into the Ivy cache
#      (~/.cache/lakegate/ivy unless conf says otherwise), then the driver JVM's class-data
#      archive. Needs Java 17 and Maven Central once (or a filled Ivy cache).
#
# Usage: scripts/install.sh [--prefix DIR] [--source DIR|WHEEL|SDIST] [--conf DIR]
#                           [--python PYTHON] [--extras lineage,...] [--constraint FILE] [--no-jars]
set -euo pipefail

UV_VERSION=0.13.9  # the Makefile's
PREFIX=/opt/lakegate
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF=""
PYTHON="${PYTHON:-python3.11}"
EXTRAS=""
CONSTRAINT=""
JARS=1

die() { echo "install.sh: error: $*" >&2; exit 2; }
step() { echo "==> $* ($((SECONDS - started)) s)"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --source) SOURCE="$2"; shift 2 ;;
        --conf) CONF="$2"; shift 2 ;;
        --python) PYTHON="$2"; shift 2 ;;
        --extras) EXTRAS="$2"; shift 2 ;;
        --constraint) CONSTRAINT="$2"; shift 2 ;;
        --no-jars) JARS=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
started=$SECONDS

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or pass --python"
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$version" = "3.11" ] || die "$PYTHON is Python $version; lakegate needs 3.11 (PySpark 3.5)"
if [ "$JARS" = 1 ]; then
    java=${JAVA_HOME:+$JAVA_HOME/bin/}java
    command -v "$java" >/dev/null || die "no java (set JAVA_HOME or put Java 17 on PATH)"
    java_major=$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
    [ "${java_major:-0}" -ge 17 ] || die "java is version ${java_major:-unknown}; Spark 3.5 here needs 17"
fi
if [ -d "$SOURCE" ]; then
    [ -f "$SOURCE/pyproject.toml" ] || die "$SOURCE has no pyproject.toml: not a lakegate source folder"
    CONF=${CONF:-$SOURCE/conf}
fi
[ -e "$SOURCE" ] || die "$SOURCE does not exist"
[ -n "$CONF" ] || die "--conf DIR is needed with a wheel or sdist (they carry no conf/)"
[ -f "$CONF/local.yaml" ] || die "$CONF has no local.yaml: not a lakegate configuration folder"
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
VENV="$PREFIX/venv"

step "virtualenv $VENV ($PYTHON $version)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"

case "$SOURCE" in
    *.whl) wheel="$SOURCE" ;;
    *)
        step "building the lakegate wheel from $SOURCE"
        rm -rf "$PREFIX/dist"
        # From a folder, uv builds an sdist and the wheel from it (nothing untracked gets in).
        "$VENV/bin/uv" build --quiet --python "$VENV/bin/python" --out-dir "$PREFIX/dist" "$SOURCE"
        wheel=$(ls "$PREFIX"/dist/lakegate-*.whl)
        ;;
esac

step "installing $(basename "$wheel")${EXTRAS:+ [$EXTRAS]}"
requirement="$wheel${EXTRAS:+[$EXTRAS]}"
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" ${CONSTRAINT:+--constraint "$CONSTRAINT"} "$requirement"

step "configuration into $PREFIX/conf"
if [ "$(cd "$CONF" && pwd)" != "$PREFIX/conf" ]; then
    rm -rf "$PREFIX/conf"
    cp -R "$CONF" "$PREFIX/conf"
fi
if [ -d "$SOURCE" ]; then  # the sample: the Items table and the example suites
    mkdir -p "$PREFIX/data" "$PREFIX/checks"
    cp "$SOURCE/data/items.csv" "$PREFIX/data/items.csv"
    rm -rf "$PREFIX/checks/examples"
    cp -R "$SOURCE/checks/examples" "$PREFIX/checks/examples"
fi
mkdir -p "$PREFIX/bin"
cat >"$PREFIX/bin/lakegate" <<EOF
#!/bin/sh
# lakegate installed by scripts/install.sh: its configuration is $PREFIX/conf.
export LAKEGATE_CONF_DIR="\${LAKEGATE_CONF_DIR:-$PREFIX/conf}"
exec "$VENV/bin/lakegate" "\$@"
EOF
chmod +x "$PREFIX/bin/lakegate"

if [ "$JARS" = 1 ]; then
    step "jars into the Ivy cache, then the class-data archive"
    (cd "$PREFIX" && LAKEGATE_CONF_DIR="$PREFIX/conf" "$VENV/bin/python" -m spark_jobs.jars)
fi
step "done: $PREFIX/bin/lakegate"
