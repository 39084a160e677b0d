# Common tasks. `make demo` and `make test` set everything up first, on a fresh machine too.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
# Test processes: each runs whole test modules with a SparkSession of its own (conf/test.yaml).
# Three on two cores: the slow tiers mostly wait on servers and subprocess JVMs (the whole run
# used 21 min of CPU in 30 min of wall time with two, 6 Dec).
TEST_WORKERS ?= 3
# xdist hands out whole modules largest-count first unless told to keep collection order, which
# tests/conftest.py sets to the longest modules first (LONGEST_FIRST).
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

.PHONY: setup jars system-packages airflow test-airflow demo test test-unit test-fast oracle-contracts lint format bench-validate bench-items bench-predict bench-sql bench-compiled bench-serving clean

setup: $(STAMP) jars

# uv installs the same versions pip resolves, in a quarter of the time on a fresh machine
# (34 s against 120 s with empty caches, 3 Dec 2026): it goes into the venv first, from PyPI.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e ".[dev]"
	touch $(STAMP)

# Resolve the Deequ and Delta Lake jars (and their dependencies) from Maven Central into
# ~/.cache/lakegate/ivy.
jars: $(STAMP)
	$(PY) -m spark_jobs.jars

# Servers and tools the tests start (Redis, PostgreSQL, headless Chromium), from Debian's packages
# when missing; as root (CI), else it says what to install. A missing one fails its tests in CI.
SYSTEM_PACKAGES := redis-server:/usr/bin/redis-server postgresql:/usr/lib/postgresql chromium:/usr/bin/chromium
system-packages:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  [ -e "$${entry#*:}" ] || missing="$$missing $${entry%%:*}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing (Debian packages the tests start)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	else echo "make: the tests need$$missing (Debian packages): install them, or their tests fail"; fi

demo: setup
	$(VENV)/bin/lakegate run conf/pipelines/users.yaml

# The README's test command (and CI's): lint and type checks first, then every test, the
# Airflow, Kafka and PostgreSQL tiers included.
test: setup system-packages airflow lint
	$(PYTEST)

# Apache Airflow 3 and its Spark provider in a virtualenv of their own (~/.cache/lakegate/airflow-venv);
# not a lakegate dependency. Without network (exit 3) the Airflow tests skip saying so.
airflow:
	@scripts/airflow_venv.sh >/dev/null || { rc=$$?; [ $$rc -eq 3 ] && echo "make: Airflow could not be downloaded; its tests will skip"; [ $$rc -eq 3 ]; }

# Only the generated-DAG tests (a real `airflow dags test` per pipeline).
test-airflow: setup airflow
	$(PY) -m pytest -q -m airflow

# The JVM-free tier (tests/conftest.py marks it from each test's fixtures): under a minute.
test-unit: $(STAMP)
	$(PY) -m pytest -q -m unit

# Everything but the tests marked slow (chosen by measured time: 5 s or more, or sharing a module
# fixture of 10 s or more): 647 tests in 2 min 10 s on 2 cores, idle (7 Dec 2026); the run ends
# by naming any fast-tier test whose call took 20 s or more. `make test-unit`: 443 tests, ~20 s.
test-fast: setup
	$(PYTEST) -m "not slow"

# datacontract-cli 1.2.8 (its own venv under ~/.cache/lakegate) against lakegate on the contract corpus.
oracle-contracts: setup
	scripts/datacontract_oracle.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench-validate: setup
	$(PY) bench/bench_validate.py

bench-items: setup
	$(PY) bench/bench_items.py

bench-predict: setup
	$(PY) bench/bench_predict.py

bench-sql: setup
	$(PY) bench/bench_sql_endpoint.py

bench-compiled: setup
	$(PY) bench/bench_compiled.py

bench-serving: setup
	$(PY) bench/bench_serving.py

clean:
	rm -rf .lakegate out spark-warehouse .pytest_cache .ruff_cache .mypy_cache
