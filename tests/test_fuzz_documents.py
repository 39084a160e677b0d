"""Hostile documents: suites, GX JSON and pipeline YAML either load or are refused cleanly.

Property-based (Hypothesis), no JVM: every generated document, random structures, mutations of
the bundled examples (checks/examples/*.yaml and *.json, conf/pipelines/users.yaml), text cut
or spliced anywhere, and bytes that are not UTF-8, is either loaded by the loader Spark jobs use
(`checks.suite_formats.load_suite`, `spark_jobs.pipeline.load_pipeline`, `lakegate convert`) or
refused with a `lakegate_errors.UserError` whose message names the file and a line. Any other
exception is a bug (exit 70 from the CLI) and fails the test with the document that caused it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from checks.arguments import ConstraintArgs
from checks.constraint_types import CONSTRAINT_TYPES
from checks.great_expectations import SUPPORTED_EXPECTATIONS
from checks.suite_formats import load_suite
from lakegate_errors import UserError
from spark_jobs.cli import main
from spark_jobs.pipeline import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "checks" / "examples"
YAML_EXAMPLES = sorted(EXAMPLES.glob("*.yaml"))
JSON_EXAMPLES = sorted(EXAMPLES.glob("*.json"))
PIPELINE = ROOT / "conf" / "pipelines" / "users.yaml"

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# Words the loaders look for, so random documents reach past the first check.
ARGUMENT_NAMES = sorted(
    {name for t in CONSTRAINT_TYPES.values() for name in t.args.model_fields}
    | set(ConstraintArgs.model_fields)
)
VOCABULARY = sorted(
    {
        *CONSTRAINT_TYPES,
        *ARGUMENT_NAMES,
        *SUPPORTED_EXPECTATIONS,
        *("suite", "description", "schema", "checks", "name", "level", "constraints"),
        *("anomalies", "strategy", "Size", "Mean", "Completeness", "error", "warning"),
        *("expectations", "expectation_type", "type", "kwargs", "meta", "severity", "mostly"),
        *("expectation_suite_name", "column", "value_set", "min_value", "max_value"),
        *("pipeline", "report", "sample_data", "steps", "validate", "features", "train"),
        *("predict", "input", "output", "path", "rows", "seed", "key", "definitions", "model"),
        *("config", "gate", "table", "passthrough", "kind", "DataContract"),
    }
)


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(VOCABULARY),
        st.text(max_size=12),
    )


def keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=8))


def structures() -> st.SearchStrategy[Any]:
    """Nested lists and mappings whose keys are mostly words the loaders know."""
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(keys(), inner, max_size=4),
        ),
        max_leaves=24,
    )


# --------------------------------------------------------------------------------------------
# Mutations of a real document


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Callable[[Any], Any]) -> Any:
    """`value` with the part at `path` replaced by `new(old)` (a `_DELETE` removes it)."""
    if not path:
        return new(value)
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        changed = _replaced(out[head], rest, new)
        if changed is _DELETE:
            del out[head]
        else:
            out[head] = changed
        return out
    out_list = list(value)
    changed = _replaced(out_list[head], rest, new)
    if changed is _DELETE:
        del out_list[head]
    else:
        out_list[head] = changed
    return out_list


_DELETE = object()


@st.composite
def mutated(draw: st.DrawFn, original: Any) -> Any:
    """`original` with one to three parts replaced, removed, retyped, renamed or duplicated."""
    value = original
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        how = draw(st.sampled_from(["replace", "delete", "wrap", "rename", "double", "empty"]))
        if how == "replace":
            new = draw(structures())
            value = _replaced(value, path, lambda old, new=new: new)
        elif how == "delete" and path:
            value = _replaced(value, path, lambda old: _DELETE)
        elif how == "wrap":
            value = _replaced(value, path, lambda old: [old] if draw(st.booleans()) else {"x": old})
        elif how == "rename" and path and isinstance(path[-1], str):
            key, old_key = draw(keys()), path[-1]
            value = _replaced(value, path[:-1], lambda old, k=key, o=old_key: _renamed(old, o, k))
        elif how == "double":
            value = _replaced(value, path, lambda old: old * 2 if isinstance(old, list) else old)
        elif how == "empty":
            value = _replaced(value, path, lambda old: type(old)() if old is not None else old)
    return value


def _renamed(mapping: dict[Any, Any], old: str, new: str) -> dict[Any, Any]:
    return {(new if key == old else key): value for key, value in mapping.items()}


@st.composite
def spliced_text(draw: st.DrawFn, text: str) -> str:
    """`text` cut short, or with a span removed, repeated or replaced by other characters."""
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    how = draw(st.sampled_from(["cut", "remove", "repeat", "insert"]))
    if how == "cut":
        return text[:start]
    if how == "remove":
        return text[:start] + text[end:]
    if how == "repeat":
        return text[:end] + text[start:end] + text[end:]
    noise = draw(st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#,? \n\t%@`\\")), max_size=6))
    return text[:start] + noise + text[end:]


# --------------------------------------------------------------------------------------------
# The property


def assert_loads_or_refused_with_file_and_line(load: Callable[[Path], object], path: Path) -> None:
    """`load(path)` returns, or raises a UserError naming `path` and a line; nothing else."""
    try:
        load(path)
    except UserError as exc:
        message = str(exc)
        assert re.search(re.escape(str(path)) + r":\d+", message), (
            f"refused without a file:line: {message!r}\n--- document ---\n{_shown(path)}"
        )


def _shown(path: Path) -> str:
    return path.read_bytes()[:3000].decode("utf-8", "replace")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2)


EXAMPLE_DATA = {path.name: yaml.safe_load(path.read_text()) for path in YAML_EXAMPLES}
JSON_DATA = {path.name: json.loads(path.read_text()) for path in JSON_EXAMPLES}
PIPELINE_DATA = yaml.safe_load(PIPELINE.read_text())


def test_the_examples_load_as_they_are() -> None:
    """The control: the unmutated documents load."""
    assert YAML_EXAMPLES and JSON_EXAMPLES
    for path in [*YAML_EXAMPLES, *JSON_EXAMPLES]:
        load_suite(path)
    assert load_pipeline(PIPELINE).steps


@FUZZ
@given(document=structures())
def test_random_suite_yaml_loads_or_is_refused_with_file_and_line(
    folder: Path, document: Any
) -> None:
    assert_loads_or_refused_with_file_and_line(
        load_suite, _write(folder, "s.yaml", _yaml(document))
    )


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(EXAMPLE_DATA)))
def test_mutated_example_suites_load_or_are_refused(
    folder: Path, data: st.DataObject, name: str
) -> None:
    document = data.draw(mutated(EXAMPLE_DATA[name]))
    assert_loads_or_refused_with_file_and_line(load_suite, _write(folder, name, _yaml(document)))


@FUZZ
@given(data=st.data(), name=st.sampled_from([p.name for p in YAML_EXAMPLES]))
def test_spliced_example_suite_text_loads_or_is_refused(
    folder: Path, data: st.DataObject, name: str
) -> None:
    text = data.draw(spliced_text((EXAMPLES / name).read_text()))
    assert_loads_or_refused_with_file_and_line(load_suite, _write(folder, name, text))


@FUZZ
@given(document=structures())
@example(document=[1, 2])
@example(document={"expectations": [{"expectation_type": ["a"]}]})
@example(
    document={
        "expectations": [{"expectation_type": "expect_column_values_to_not_be_null", "kwargs": [1]}]
    }
)
def test_random_gx_json_loads_or_is_refused_with_file_and_line(folder: Path, document: Any) -> None:
    path = _write(folder, "gx.json", _json(document))
    assert_loads_or_refused_with_file_and_line(load_suite, path)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(JSON_DATA)))
def test_mutated_gx_suites_load_or_are_refused(
    folder: Path, data: st.DataObject, name: str
) -> None:
    document = data.draw(mutated(JSON_DATA[name]))
    text = data.draw(st.sampled_from([_json(document), json.dumps(document)]))
    assert_loads_or_refused_with_file_and_line(load_suite, _write(folder, name, text))


@FUZZ
@given(data=st.data())
def test_spliced_gx_json_text_loads_or_is_refused(folder: Path, data: st.DataObject) -> None:
    text = data.draw(spliced_text(JSON_EXAMPLES[0].read_text()))
    assert_loads_or_refused_with_file_and_line(load_suite, _write(folder, "gx.json", text))


@FUZZ
@given(document=structures())
def test_random_pipeline_yaml_loads_or_is_refused_with_file_and_line(
    folder: Path, document: Any
) -> None:
    path = _write(folder, "pipeline.yaml", _yaml({"pipeline": "p", "steps": document}))
    assert_loads_or_refused_with_file_and_line(load_pipeline, path)


@FUZZ
@given(data=st.data())
def test_mutated_users_pipeline_loads_or_is_refused(folder: Path, data: st.DataObject) -> None:
    document = data.draw(mutated(PIPELINE_DATA))
    text = data.draw(st.one_of(st.just(_yaml(document)), spliced_text(PIPELINE.read_text())))
    assert_loads_or_refused_with_file_and_line(load_pipeline, _write(folder, "users.yaml", text))


@FUZZ
@given(content=st.binary(max_size=200), suffix=st.sampled_from([".yaml", ".json"]))
@example(content=b"suite: caf\xe9\n", suffix=".yaml")
@example(content=b'{"expectations": [\xff]}', suffix=".json")
def test_bytes_that_are_not_utf8_are_refused_with_file_and_line(
    folder: Path, content: bytes, suffix: str
) -> None:
    path = _write(folder, f"bytes{suffix}", content)
    assert_loads_or_refused_with_file_and_line(load_suite, path)
    assert_loads_or_refused_with_file_and_line(load_pipeline, path)


# Eleven lists of nine aliases to the one before: 9^11 values once the aliases are expanded.
ALIAS_BOMB = "l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 11)
)


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",  # an alias inside itself
        "a: &a {b: *a}\n",
        ALIAS_BOMB,
        "x: " + "[" * 2000 + "]" * 2000 + "\n",  # deeper than Python's recursion limit
    ],
    ids=["self-alias-list", "self-alias-map", "alias-bomb", "deep-nesting"],
)
def test_hostile_yaml_is_refused_quickly_with_file_and_line(folder: Path, text: str) -> None:
    path = _write(folder, "hostile.yaml", text)
    for load in (load_suite, load_pipeline):
        with pytest.raises(UserError, match=re.escape(str(path)) + r":\d+"):
            load(path)


def test_deeply_nested_gx_json_is_refused_with_file_and_line(folder: Path) -> None:
    path = _write(folder, "deep.json", '{"expectations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(UserError, match=re.escape(str(path)) + r":\d+"):
        load_suite(path)


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(document=structures())
@example(document=[1, 2])
def test_convert_exits_0_or_2_never_70(
    folder: Path, document: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same through the CLI: `lakegate convert` answers 0 or 2 with a message, no traceback."""
    path = _write(folder, "convert.json", _json({"expectations": [document]}))
    code = main(["convert", str(path)])
    captured = capsys.readouterr()
    assert code in (0, 2), captured.err
    assert "Traceback" not in captured.err
    if code == 2:
        assert re.search(re.escape(str(path)) + r":\d+", captured.err), captured.err
