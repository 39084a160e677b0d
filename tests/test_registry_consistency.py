"""The constraint registry agrees with itself, with the row rules and with the reference docs.

No JVM: the registry (`checks.constraint_types.CONSTRAINT_TYPES`) is plain data, the Deequ
methods its builders call on the JVM are read from the source with `ast`, and the reference
table is read from docs/suites.md (the README links there for the full list).
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks import constraint_types, row_rules
from checks.constraint_types import CONSTRAINT_TYPES, JVM_CHECK_METHODS, ConstraintType

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "suites.md"
# What the reference's "rows" column says for each `row_level`.
ROWS_WORDS = {"always": "yes", "when_all_rows": "when all rows", "never": "no"}


def _rule_name(ctype: ConstraintType) -> str | None:
    """The row_rules function (or rule factory) a type's rule comes from, by name."""
    rule = ctype.row_rule
    if rule is None:
        return None
    assert rule.__module__ == row_rules.__name__, f"{ctype.name}: rule outside checks.row_rules"
    return rule.__qualname__.split(".<locals>")[0]


def _row_rules_module_rules() -> set[str]:
    """Functions of checks.row_rules that are rules `(args, ctx)` or make one (`-> RowRule`)."""
    found = set()
    for name, function in inspect.getmembers(row_rules, inspect.isfunction):
        if function.__module__ != row_rules.__name__ or name.startswith("_"):
            continue
        signature = inspect.signature(function)
        if list(signature.parameters) == ["args", "ctx"] or signature.return_annotation in {
            "RowRule",
            row_rules.RowRule,
        }:
            found.add(name)
    return found


@pytest.mark.parametrize("name", sorted(CONSTRAINT_TYPES))
def test_a_type_that_can_quarantine_has_a_row_rule_and_only_such_a_type(name: str) -> None:
    ctype = CONSTRAINT_TYPES[name]
    assert ctype.name == name
    if ctype.row_level == "never":
        assert ctype.row_rule is None, f"{name} never blames rows but has a row rule"
    else:
        assert ctype.row_rule is not None, f"{name} can quarantine ({ctype.row_level}): no rule"


def test_every_row_rule_of_row_rules_serves_some_constraint_type() -> None:
    used = {_rule_name(t) for t in CONSTRAINT_TYPES.values()} - {None}
    defined = _row_rules_module_rules()
    assert "duplicated_key" in defined and "pattern_rule" in defined  # the reader sees rules
    assert defined == used, (
        f"rules no type uses: {sorted(defined - used)}; types' rules not found as rules: "
        f"{sorted(used - defined)}"
    )


@pytest.mark.parametrize("name", sorted(CONSTRAINT_TYPES))
def test_a_grouping_type_and_only_one_uses_the_duplicate_flag_rule(name: str) -> None:
    ctype = CONSTRAINT_TYPES[name]
    uses_flag = ctype.row_rule is row_rules.duplicated_key
    assert ctype.groups_rows == uses_flag, (
        f"{name}: groups_rows={ctype.groups_rows} but its rule is {_rule_name(ctype)}"
    )


@pytest.mark.parametrize("name", sorted(CONSTRAINT_TYPES))
def test_a_predicate_type_names_its_predicate_and_is_judged_by_it(name: str) -> None:
    ctype = CONSTRAINT_TYPES[name]
    assert (ctype.predicate is None) == (ctype.predicate_name is None), name
    if ctype.predicate is not None:
        assert ctype.row_rule is not None, f"{name}: a predicate type blames the rows it fails"


# --------------------------------------------------------------------------------------------
# The Deequ methods the builders call on the JVM `Check` (`<check>._Check.<method>`)


def _is_jvm_check(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "_Check"


def _constants_bound_to(name: str, call: ast.Call, parents: dict[ast.AST, ast.AST]) -> set[str]:
    """The string constants `name` takes at `call`: a comprehension's `for name in [...]`."""
    found: set[str] = set()
    node: ast.AST | None = call
    while node is not None:
        for generator in getattr(node, "generators", []):
            target, values = generator.target, generator.iter
            if not isinstance(values, ast.List | ast.Tuple):
                continue
            for element in values.elts:
                pairs = (
                    zip(target.elts, element.elts, strict=True)
                    if isinstance(target, ast.Tuple) and isinstance(element, ast.Tuple)
                    else [(target, element)]
                )
                found |= {
                    v.value
                    for t, v in pairs
                    if isinstance(t, ast.Name) and t.id == name and isinstance(v, ast.Constant)
                }
        node = parents.get(node)
    return found


def _called_jvm_methods(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """(Deequ method, line) for every method the module calls on a JVM `Check`."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    # functions that call `getattr(<check>._Check, <their parameter>)`: name -> parameter index
    forwarding: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_jvm_check(node.value):
            yield node.attr, node.lineno
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and _is_jvm_check(node.args[0])
        ):
            continue
        method = node.args[1]
        if isinstance(method, ast.Constant):
            yield str(method.value).split("$")[0], node.lineno
        elif isinstance(method, ast.Name):
            outer = parents.get(node)
            while outer is not None:  # the def taking it as a parameter (the builder's factory)
                if isinstance(outer, ast.FunctionDef):
                    params = [a.arg for a in outer.args.args]
                    if method.id in params:
                        forwarding[outer.name] = params.index(method.id)
                outer = parents.get(outer)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            index = forwarding.get(node.func.id)
            if index is None or len(node.args) <= index:
                continue
            argument = node.args[index]
            if isinstance(argument, ast.Constant):
                yield str(argument.value), node.lineno
            elif isinstance(argument, ast.Name):
                for value in _constants_bound_to(argument.id, node, parents):
                    yield value, node.lineno


@pytest.fixture(scope="module")
def jvm_methods_called() -> dict[str, int]:
    source = Path(inspect.getfile(constraint_types)).read_text(encoding="utf-8")
    return dict(_called_jvm_methods(ast.parse(source)))


def test_every_jvm_check_method_is_called_by_some_builder(
    jvm_methods_called: dict[str, int],
) -> None:
    assert {"areUnique", "hasVariance", "satisfies"} <= set(jvm_methods_called)  # reader works
    unused = sorted(set(JVM_CHECK_METHODS) - set(jvm_methods_called))
    assert not unused, f"JVM_CHECK_METHODS no builder calls: {unused}"


def test_every_method_a_builder_calls_on_the_jvm_is_listed_for_the_jar_check(
    jvm_methods_called: dict[str, int],
) -> None:
    unlisted = {m: line for m, line in jvm_methods_called.items() if m not in JVM_CHECK_METHODS}
    assert not unlisted, (
        "Deequ methods called on the JVM Check but missing from JVM_CHECK_METHODS (so no test "
        f"confirms the jar has them), by line of checks/constraint_types.py: {unlisted}"
    )


def test_the_source_reader_finds_forwarded_and_listed_methods() -> None:
    """The reader sees `getattr(c._Check, m)` with `m` from a call or a comprehension's list."""
    source = (
        "def direct(check):\n    return check._Check.alpha(1)\n"
        "def by_text(check):\n    return getattr(check._Check, 'beta$default$3')()\n"
        "def forward(method):\n"
        "    def build(check):\n        return getattr(check._Check, method)()\n"
        "    return build\n"
        "ONE = forward('gamma')\n"
        "MANY = [forward(name) for name in ['delta', 'epsilon']]\n"
        "PAIRS = [forward(name) for name, kind in [('zeta', 1)]]\n"
    )
    found = set(dict(_called_jvm_methods(ast.parse(source))))
    assert found == {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}


# --------------------------------------------------------------------------------------------
# The reference table (docs/suites.md, linked from the README)

_TABLE_ROW = re.compile(r"^\s*\|\s*(`[^|]+`)\s*\|.*\|\s*([^|]+?)\s*\|\s*$")


def reference_rows(text: str) -> dict[str, str]:
    """Constraint name -> the "rows" column, from the reference's constraint table."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        found = _TABLE_ROW.match(line)
        if found is None:
            continue
        for name in re.findall(r"`(\w+)`", found.group(1)):
            rows[name] = found.group(2)
    return rows


def test_the_reference_table_lists_every_constraint_type_with_its_rows() -> None:
    listed = reference_rows(REFERENCE.read_text(encoding="utf-8"))
    assert "isComplete" in listed and "hasSize" in listed, "the table was not found"
    missing = sorted(set(CONSTRAINT_TYPES) - set(listed))
    assert not missing, f"constraint types missing from {REFERENCE.name}'s table: {missing}"
    unknown = sorted(set(listed) - set(CONSTRAINT_TYPES))
    assert not unknown, f"{REFERENCE.name}'s table lists types the registry lacks: {unknown}"
    wrong = {
        name: (listed[name], ROWS_WORDS[t.row_level])
        for name, t in CONSTRAINT_TYPES.items()
        if not listed[name].startswith(ROWS_WORDS[t.row_level])
    }
    assert not wrong, f"'rows' column (says, should start with) per type: {wrong}"


def test_the_readme_sends_readers_to_the_reference() -> None:
    assert "docs/suites.md" in (ROOT / "README.md").read_text(encoding="utf-8")
