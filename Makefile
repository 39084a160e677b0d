# Common tasks. `make demo` and `make test` set everything up first, on a fresh machine too.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Test processes: each runs whole test modules with a SparkSession of its own (conf/test.yaml).
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: setup jars demo test test-fast lint format bench-validate bench-items bench-predict bench-sql bench-compiled bench-serving clean

setup: $(STAMP) jars

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Resolve the Deequ and Delta Lake jars (and their dependencies) from Maven Central into
# ~/.cache/lakegate/ivy.
jars: $(STAMP)
	$(PY) -m spark_jobs.jars

demo: setup
	$(VENV)/bin/lakegate run conf/pipelines/users.yaml

# The README's test command (and CI's): lint and type checks first, then every test.
test: setup lint
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow"

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
