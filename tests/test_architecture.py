"""The rooms' import and storage rules (docs/architecture.md), checked over the source with `ast`.

No Spark session and no import of the project: every rule reads the files as they are. Packages
are discovered (every top-level folder holding Python files), so a new server package or job
module is covered the day it lands. Each failure names the file, the line and the rule.

The last tests feed each rule a small project that breaks it, so none of them can pass vacuously.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The rooms of docs/architecture.md; every other top-level package is a server (something that
# is not a Spark job: an HTTP model server, an online store). ERRORS and CONFIG are the bottom
# rooms every other room may import.
ERRORS, CONFIG = "lakegate_errors", "lakegate_config"
CHECKS, UDFS, JOBS = "checks", "udfs", "spark_jobs"
ROOMS = (ERRORS, CONFIG, CHECKS, UDFS, JOBS)
# Folders with Python that are not the product: they may import and touch anything.
EXEMPT_FOLDERS = {"tests", "bench", "notebooks", "docs", "conf", "data", "build", "dist"}
CLI = f"{JOBS}.cli"
SERVICES = f"{JOBS}.services"
SESSION_FILE = "spark_jobs/services/session.py"
TABLE_IO_FILE = "spark_jobs/services/table_io.py"
# Importing any of these at module level starts down the JVM road (pyspark, its gateway, Deequ's
# and Delta's Python wrappers all import pyspark). The rule follows the project's own modules
# only: third-party code is not read, and MLflow's `mlflow.types.schema` does `import pyspark`
# (the package, no JVM) whenever it is installed, so a server using MLflow has `pyspark` in
# sys.modules all the same; what the rule keeps out is lakegate code that needs Spark.
JVM_PACKAGES = ("pyspark", "py4j", "pydeequ", "delta")

# Table I/O outside table_io.py that is legitimate: (file, enclosing function) -> reason.
TABLE_IO_ALLOWED: dict[tuple[str, str], str] = {
    ("spark_jobs/services/stream_io.py", "read_stream"): "the streaming sources (readStream)",
    ("spark_jobs/services/stream_io.py", "_files_schema"): "a stream batch's files, for drift",
    ("spark_jobs/services/stream_io.py", "append_once"): "a stream batch's idempotent append",
    ("spark_jobs/services/stream_io.py", "start_query"): "the stream's foreachBatch query",
    ("spark_jobs/services/kafka_source.py", "_records"): "Kafka topics (the connector's reader)",
}

# checks/ writes no storage, with one exception: Deequ's metrics repository
# (FileSystemMetricsRepository), which Deequ itself appends to. (file, function, call) -> reason.
CHECKS_STORAGE_ALLOWED: dict[tuple[str, str, str], str] = {
    ("checks/deequ_run.py", "metrics_repository", "mkdir"): (
        "creates the folder of the Deequ metrics repository (FileSystemMetricsRepository)"
    ),
    ("checks/deequ_run.py", "verify", "saveOrAppendResult"): (
        "Deequ's VerificationSuite appends the run's metrics to the metrics repository"
    ),
    ("checks/deequ_run.py", "history_repository", "save"): (
        "fills an InMemoryMetricsRepository with the saved runs (memory only, no storage)"
    ),
    ("checks/gate.py", "Gate.save_metrics", "save"): (
        "the one-pass gate appends the run's metrics to the Deequ metrics repository"
    ),
    ("checks/anomalies.py", "compute_current_metrics", "saveOrAppendResult"): (
        "Deequ's AnalysisRunner appends the anomaly checks' metrics to the metrics repository"
    ),
}


# --------------------------------------------------------------------------------------------
# Reading the project


@dataclass(frozen=True)
class Import:
    """One import statement's target, fully resolved, with where and how it runs."""

    target: str  # for `from X import n`: X.n (n may be a module or a name in X)
    shown: str  # what the statement imports from, as reported
    line: int
    in_function: bool  # inside a def or lambda: runs when called, not on import
    type_checking_only: bool  # under `if TYPE_CHECKING:`: never runs
    under_main_guard: bool  # under `if __name__ == "__main__":`

    @property
    def at_import_time(self) -> bool:
        """Whether importing the module runs this import."""
        return not (self.in_function or self.type_checking_only or self.under_main_guard)


@dataclass(frozen=True)
class Source:
    """One Python file of a product package."""

    path: str  # relative to the project root, with forward slashes
    module: str
    tree: ast.Module
    imports: tuple[Import, ...]

    @property
    def package(self) -> str:
        return self.module.split(".")[0]


@dataclass
class Project:
    """The product packages of a source tree and their files."""

    root: Path
    packages: list[str]
    sources: dict[str, Source] = field(default_factory=dict)  # by module name

    @property
    def servers(self) -> list[str]:
        return [p for p in self.packages if p not in ROOMS]

    def in_package(self, package: str) -> Iterator[Source]:
        return (s for s in self.sources.values() if s.package == package)

    def owning_module(self, target: str) -> str | None:
        """The longest project module that `target` (a module or a name in one) lies in."""
        parts = target.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in self.sources:
                return candidate
        return None


def within(target: str, package: str) -> bool:
    """Whether dotted `target` is `package` or something inside it."""
    return target == package or target.startswith(package + ".")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def _imports(tree: ast.Module, module: str, is_package: bool) -> tuple[Import, ...]:
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool, main_guard: bool) -> None:
        def add(target: str, shown: str) -> None:
            found.append(Import(target, shown, node.lineno, in_function, type_checking, main_guard))

        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            for alias in node.names:
                add(base if alias.name == "*" else f"{base}.{alias.name}", base)
        elif (
            isinstance(node, ast.Call)
            and _call_name(node) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node.args[0].value, node.args[0].value)
        if isinstance(node, ast.If) and (_is_type_checking(node.test) or _is_main_guard(node.test)):
            for child in node.body:
                visit(
                    child,
                    in_function,
                    type_checking or _is_type_checking(node.test),
                    main_guard or _is_main_guard(node.test),
                )
            for child in node.orelse:
                visit(child, in_function, type_checking, main_guard)
            return
        nested = in_function or isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        for child in ast.iter_child_nodes(node):
            visit(child, nested, type_checking, main_guard)

    visit(tree, False, False, False)
    return tuple(found)


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _discover_packages(root: Path) -> list[str]:
    """Top-level folders holding Python: regular packages and namespace ones (no __init__.py)."""
    return sorted(
        {
            module.parent.name
            for module in root.glob("*/*.py")
            if not module.parent.name.startswith((".", "_"))
            and module.parent.name not in EXEMPT_FOLDERS
        }
    )


def load_project(root: Path) -> Project:
    """Parse every file of every product package under `root`."""
    project = Project(root, _discover_packages(root))
    for package in project.packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            is_package = path.name == "__init__.py"
            parts = relative.with_suffix("").parts
            module = ".".join(parts[:-1] if is_package else parts)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
            project.sources[module] = Source(
                relative.as_posix(), module, tree, _imports(tree, module, is_package)
            )
    return project


def enclosing_functions(tree: ast.Module) -> dict[ast.AST, str]:
    """Each node -> qualified name of the def it is in ('Class.method'), '<module>' outside."""
    owner: dict[ast.AST, str] = {}

    def visit(node: ast.AST, scope: list[str], in_def: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = [*scope, child.name]
                owner[child] = ".".join(scope) if in_def else "<module>"
                visit(child, inner, in_def or not isinstance(child, ast.ClassDef))
            else:
                owner[child] = ".".join(scope) if in_def else "<module>"
                visit(child, scope, in_def)

    visit(tree, [], False)
    return owner


def violation(source: Source, line: int, rule: str, detail: str) -> str:
    return f"{source.path}:{line}: [{rule}] {detail}"


def fail_on(violations: list[str]) -> None:
    violations = list(dict.fromkeys(violations))  # one line per statement, not per name
    assert not violations, "\n".join(["Architecture rules broken:", *violations])


# --------------------------------------------------------------------------------------------
# The rules: each returns the violations it finds in a project.


def _room_may_import_only(project: Project, room: str, allowed: set[str], rule: str) -> list[str]:
    forbidden = [p for p in project.packages if p not in allowed]
    found = []
    for source in project.in_package(room):
        for imp in source.imports:
            for package in forbidden:
                if within(imp.target, package):
                    found.append(violation(source, imp.line, rule, f"imports {imp.shown}"))
    return found


def lakegate_errors_imports_nothing_of_the_project(project: Project) -> list[str]:
    rule = "lakegate_errors imports nothing of the project"
    return _room_may_import_only(project, ERRORS, {ERRORS}, rule)


def lakegate_config_imports_only_lakegate_errors(project: Project) -> list[str]:
    rule = "lakegate_config imports only lakegate_errors of the project"
    return _room_may_import_only(project, CONFIG, {CONFIG, ERRORS}, rule)


def checks_never_imports_jobs_udfs_or_servers(project: Project) -> list[str]:
    rule = "checks never imports spark_jobs, udfs or a server package"
    return _room_may_import_only(project, CHECKS, {CHECKS, ERRORS, CONFIG}, rule)


def udfs_never_imports_jobs_checks_or_servers(project: Project) -> list[str]:
    rule = "udfs never imports spark_jobs, checks or a server package"
    return _room_may_import_only(project, UDFS, {UDFS, ERRORS, CONFIG}, rule)


def job_modules(project: Project) -> list[str]:
    """Job entry points: the modules directly in spark_jobs/ other than the CLI."""
    return [
        module
        for module, source in project.sources.items()
        if module.count(".") == 1
        and source.package == JOBS
        and module != CLI
        and not source.path.endswith("/__init__.py")
    ]


def services_never_import_a_job(project: Project) -> list[str]:
    rule = "spark_jobs/services never imports a job entry point"
    jobs = job_modules(project)
    found = []
    for source in project.sources.values():
        if not within(source.module, SERVICES):
            continue
        for imp in source.imports:
            for job in jobs:
                if within(imp.target, job):
                    found.append(violation(source, imp.line, rule, f"imports {imp.shown}"))
    return found


def only_main_guards_import_the_cli(project: Project) -> list[str]:
    rule = (
        'spark_jobs.cli is imported only under `if __name__ == "__main__":` '
        "(or in a __main__.py shim): cli imports the jobs, not the other way round"
    )
    found = []
    for source in project.sources.values():
        if source.module == CLI or source.path.endswith("/__main__.py"):
            continue
        for imp in source.imports:
            if within(imp.target, CLI) and not imp.under_main_guard:
                where = "inside a function" if imp.in_function else "at module level"
                found.append(violation(source, imp.line, rule, f"imports {imp.shown} {where}"))
    return found


def _jvm_chain(project: Project, start: str) -> list[str] | None:
    """A chain of module-level imports from project module `start` to pyspark, or None."""
    seen = {start}
    queue: list[list[str]] = [[start]]
    while queue:
        chain = queue.pop(0)
        for imp in project.sources[chain[-1]].imports:
            if not imp.at_import_time:
                continue
            if imp.target.split(".")[0] in JVM_PACKAGES:
                return [*chain, imp.shown]
            owner = project.owning_module(imp.target)
            if owner is None:
                continue
            parts = owner.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            for end in range(1, len(parts) + 1):
                step = ".".join(parts[:end])
                if step in project.sources and step not in seen:
                    seen.add(step)
                    queue.append([*chain, step])
    return None


def servers_never_load_pyspark_on_import(project: Project) -> list[str]:
    rule = (
        "a server package never imports pyspark at module level, "
        "directly or through a project module"
    )
    found = []
    for package in project.servers:
        for source in project.in_package(package):
            for imp in source.imports:
                if not imp.at_import_time:
                    continue
                if imp.target.split(".")[0] in JVM_PACKAGES:
                    chain: list[str] | None = [source.module, imp.shown]
                else:
                    owner = project.owning_module(imp.target)
                    chain = _jvm_chain(project, owner) if owner else None
                    chain = [source.module, *chain] if chain else None
                if chain:
                    found.append(violation(source, imp.line, rule, " -> ".join(chain)))
    return found


def _ends_with(node: ast.expr, name: str) -> bool:
    return (isinstance(node, ast.Name) and node.id == name) or (
        isinstance(node, ast.Attribute) and node.attr == name
    )


def _session_building(node: ast.AST) -> str | None:
    if (
        isinstance(node, ast.Attribute)
        and node.attr == "builder"
        and _ends_with(node.value, "SparkSession")
    ):
        return "SparkSession.builder"
    if isinstance(node, ast.Call):
        if _ends_with(node.func, "SparkSession") or _ends_with(node.func, "SparkContext"):
            return f"{ast.unparse(node.func)}(...)"
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "getOrCreate"
            and _ends_with(node.func.value, "SparkContext")
        ):
            return "SparkContext.getOrCreate()"
    return None


def only_the_session_service_builds_a_session(project: Project) -> list[str]:
    rule = f"only {SESSION_FILE} builds a SparkSession (use get_session / spark_session)"
    found = []
    for source in project.sources.values():
        if source.path == SESSION_FILE:
            continue
        for node in ast.walk(source.tree):
            what = _session_building(node)
            if what:
                found.append(violation(source, getattr(node, "lineno", 0), rule, what))
    return found


def _parents(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


# DataFrameReader/Writer properties (used, not called) and the writer's table methods.
READER_WRITER_PROPERTIES = {"read", "write", "readStream", "writeStream"}
TABLE_METHODS = {"writeTo", "saveAsTable", "insertInto"}


def _table_io(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str | None:
    if not isinstance(node, ast.Attribute):
        return None
    parent = parents.get(node)
    called = isinstance(parent, ast.Call) and parent.func is node
    if node.attr in READER_WRITER_PROPERTIES and not called:
        return f"{ast.unparse(node)} (DataFrame{'Reader' if 'read' in node.attr else 'Writer'})"
    if node.attr in TABLE_METHODS and called:
        return f".{node.attr}(...)"
    if node.attr == "table" and called and _ends_with(node.value, "spark"):
        return f"{ast.unparse(node)}(...) (catalog read)"
    return None


def table_io_goes_through_table_io(project: Project) -> list[str]:
    rule = f"table reads and writes go through {TABLE_IO_FILE}"
    found = []
    used: set[tuple[str, str]] = set()
    for source in project.sources.values():
        if source.path == TABLE_IO_FILE:
            continue
        parents, owners = _parents(source.tree), enclosing_functions(source.tree)
        for node in ast.walk(source.tree):
            what = _table_io(node, parents)
            if what is None:
                continue
            key = (source.path, owners.get(node, "<module>"))
            if key in TABLE_IO_ALLOWED:
                used.add(key)
            else:
                found.append(violation(source, getattr(node, "lineno", 0), rule, what))
    found += [
        f"{p}: [{rule}] stale allow-list entry for {f}" for p, f in TABLE_IO_ALLOWED.keys() - used
    ]
    return found


# Calls that create, change or remove files or tables.
STORAGE_WRITES = {
    "mkdir", "makedirs", "touch", "write_text", "write_bytes", "unlink", "remove", "rmdir",
    "rmtree", "rename", "move", "copy", "copyfile", "copytree", "save", "saveOrAppendResult",
    "to_csv", "to_parquet", "to_json", "dump",
}  # fmt: skip


def _storage_write(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str | None:
    table = _table_io(node, parents)
    if table and "Reader" not in table and "catalog read" not in table:
        return table.split(" ")[0].split("(")[0].lstrip(".").split(".")[-1]
    if not isinstance(node, ast.Call):
        return None
    name = _call_name(node)
    if name == "open":
        modes = [a for a in node.args[1:2]] + [k.value for k in node.keywords if k.arg == "mode"]
        if any(
            not (isinstance(m, ast.Constant) and set(str(m.value)) <= set("rbt")) for m in modes
        ):
            return "open"
        return None
    if name in STORAGE_WRITES and not (name == "dump" and len(node.args) < 2):
        return name
    return None


def checks_writes_no_storage_but_the_metrics_repository(project: Project) -> list[str]:
    rule = (
        "checks/ does not write storage; the one exception is the Deequ metrics repository "
        "(FileSystemMetricsRepository), allow-listed in tests/test_architecture.py"
    )
    found = []
    used: set[tuple[str, str, str]] = set()
    for source in project.in_package(CHECKS):
        parents, owners = _parents(source.tree), enclosing_functions(source.tree)
        for node in ast.walk(source.tree):
            what = _storage_write(node, parents)
            if what is None:
                continue
            key = (source.path, owners.get(node, "<module>"), what)
            if key in CHECKS_STORAGE_ALLOWED:
                used.add(key)
            else:
                found.append(
                    violation(
                        source, getattr(node, "lineno", 0), rule, f"{what}: {ast.unparse(node)}"
                    )
                )
    stale = CHECKS_STORAGE_ALLOWED.keys() - used
    found += [f"{p}: [{rule}] stale allow-list entry {f}/{c}" for p, f, c in sorted(stale)]
    return found


def every_package_is_installed(project: Project) -> list[str]:
    pyproject = tomllib.loads((project.root / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    rule = "every top-level package is in [tool.setuptools.packages.find] include"
    return [
        f"{package}/: [{rule}] {package} is missing from {include}"
        for package in project.packages
        if not any(fnmatch.fnmatch(package, pattern) for pattern in include)
    ]


def every_package_is_type_checked(project: Project) -> list[str]:
    pyproject = tomllib.loads((project.root / "pyproject.toml").read_text(encoding="utf-8"))
    checked = pyproject.get("tool", {}).get("mypy", {}).get("packages", [])
    rule = "every top-level package is in [tool.mypy] packages (make lint type-checks it)"
    return [
        f"{package}/: [{rule}] {package} is missing from {checked}"
        for package in project.packages
        if package not in checked
    ]


# --------------------------------------------------------------------------------------------
# Issue 32's shape: no circles, sub-rooms one way, servers off spark_jobs, storage per room.
# Edges still to be taken apart are listed with the reason, so a new one fails and a removed
# one is flagged for deletion from the list (imports under `if TYPE_CHECKING:` never run and
# are left out of the circle and sub-room rules).

# (importer, imported) module edges that close a circle through an import inside a function.
PENDING_CIRCLE_EDGES: dict[tuple[str, str], str] = {}
# A sub-room and its parent import each other one way only: (inner, outer) -> the direction
# edges against the majority still waiting to be moved, by (importer, imported). The parent's
# face (its __init__.py, the public API) may re-export both, as long as no module of the
# package imports the face itself: then it sits on top of both and closes no circle.
SUB_ROOMS = {(f"{UDFS}.compiled", UDFS)}
PENDING_SUB_ROOM_EDGES: dict[tuple[str, str], str] = {}
# Server imports of spark_jobs waiting to be moved to a bottom room: (importer, imported).
PENDING_SERVER_JOB_IMPORTS: dict[tuple[str, str], str] = {}
# What each server package may import of the project (docs/architecture.md's rooms table).
SERVER_PROJECT_IMPORTS = {
    "model_server": (ERRORS, CONFIG, UDFS, "online_store"),
    "online_store": (ERRORS, CONFIG),
}
# Storage writes outside checks/ that rooms without table storage make: (file, function,
# call) -> what they write. Every other write in these packages breaks the rule.
NO_STORAGE_PACKAGES = (UDFS, "model_server")
STORAGE_ALLOWED: dict[tuple[str, str, str], str] = {
    ("udfs/model_function.py", "download_model", "mkdir"): (
        "a model's artifacts, in a temporary folder removed at exit"
    ),
    ("udfs/compiled/verdict_cache.py", "_write_atomically", "mkdir"): (
        "the compiled-scoring verdict cache (~/.cache/lakegate/compiled, LAKEGATE_COMPILED_CACHE)"
    ),
    ("model_server/models.py", "ModelCache._load", "rmtree"): (
        "an evicted version's downloaded artifacts (a temporary folder)"
    ),
    ("model_server/models.py", "ModelCache.close", "rmtree"): (
        "the downloaded artifacts of every loaded version (temporary folders)"
    ),
}
# Jobs that compute tables: each is `run(spark, settings, spec) -> Result` (docs/architecture.md).
TABLE_JOBS = ("validate", "features", "train", "predict", "materialize")
# Commands typed through `@lakegate_command(name, spec=Spec, render=render)` (issue 32): a
# module-level `run(..., spec: X) -> Result` (`run_<sub>` for a group's subcommands), each command
# `(job, spec: Spec) -> Result`; any other module defining a command is held to the same rule.
# None is pending now; an entry below would allow one untyped module (ignored while the module
# is not there, stale once it is typed).
COMMAND_SPECS = (
    "history", "suggest", "convert", "sample_data", "sql", "submit", "contract", "features",
    "train", "materialize", "validate", "predict", "pipeline", "airflow_dag", "serve",
    "serve_sql", "stream", "stream_predict",
)  # fmt: skip
PENDING_COMMAND_SPECS: dict[str, str] = {}


def _running_edges(project: Project) -> dict[tuple[str, str], int]:
    """(importer, imported) project-module edges that run (at import or when called) -> line."""
    edges: dict[tuple[str, str], int] = {}
    for source in project.sources.values():
        for imp in source.imports:
            owner = project.owning_module(imp.target)
            if owner and owner != source.module and not imp.type_checking_only:
                edges.setdefault((source.module, owner), imp.line)
    return edges


def _circles(nodes: list[str], edges: set[tuple[str, str]]) -> list[set[str]]:
    """The groups of modules that reach each other (strongly connected, two or more)."""
    following: dict[str, set[str]] = {node: set() for node in nodes}
    for a, b in edges:
        following[a].add(b)

    def reach(start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in following[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    reached = {node: reach(node) for node in nodes}
    groups = {frozenset(n for n in reached[node] if node in reached[n]) for node in nodes}
    return [set(g) for g in groups if len(g) > 1]


def _stale(
    allowed: dict[tuple[str, str], str], present: set[tuple[str, str]], rule: str
) -> list[str]:
    return [
        f"{a} -> {b}: [{rule}] stale allow-list entry" for a, b in sorted(allowed.keys() - present)
    ]


def no_import_circles(project: Project, pending: dict[tuple[str, str], str]) -> list[str]:
    rule = "no circle of imports between modules (inside functions too; TYPE_CHECKING aside)"
    edges = _running_edges(project)
    kept = {e for e in edges if e not in pending}
    found = []
    for group in _circles(sorted(project.sources), kept):
        for a, b in sorted(e for e in kept if e[0] in group and e[1] in group):
            detail = f"imports {b} (circle: {', '.join(sorted(group))})"
            found.append(violation(project.sources[a], edges[(a, b)], rule, detail))
    return found + _stale(pending, set(edges), rule)


def no_import_circles_pending_issue_32(project: Project) -> list[str]:
    return no_import_circles(project, PENDING_CIRCLE_EDGES)


def no_import_time_circles(project: Project) -> list[str]:
    rule = "no circle of module-level imports (importing any module never re-enters itself)"
    edges: dict[tuple[str, str], int] = {}
    for source in project.sources.values():
        for imp in source.imports:
            owner = project.owning_module(imp.target)
            if owner and owner != source.module and imp.at_import_time:
                edges.setdefault((source.module, owner), imp.line)
    found = []
    for group in _circles(sorted(project.sources), set(edges)):
        for a, b in sorted(e for e in edges if e[0] in group and e[1] in group):
            detail = f"imports {b} (circle: {', '.join(sorted(group))})"
            found.append(violation(project.sources[a], edges[(a, b)], rule, detail))
    return found


def sub_rooms_import_their_parent_one_way(project: Project) -> list[str]:
    found = []
    for inner, outer in sorted(SUB_ROOMS):
        rule = f"{inner} and the rest of {outer} import each other one way only"
        edges = _running_edges(project)
        inward = {
            e
            for e in edges
            if e[0] != outer
            and not within(e[0], inner)
            and within(e[0], outer)
            and within(e[1], inner)
        }
        outward = {
            e
            for e in edges
            if within(e[0], inner) and within(e[1], outer) and not within(e[1], inner)
        }
        minority = min(inward, outward, key=len) if inward and outward else set()
        for a, b in sorted(minority - PENDING_SUB_ROOM_EDGES.keys()):
            against = "the rest of the package" if minority is inward else inner
            detail = f"imports {b} while {against} imports the other way"
            found.append(violation(project.sources[a], edges[(a, b)], rule, detail))
        found += _stale(PENDING_SUB_ROOM_EDGES, minority, rule)
        face_rule = f"no module of {outer} imports the package's face ({outer}/__init__.py)"
        for a, b in sorted(e for e in edges if e[1] == outer and within(e[0], outer)):
            detail = f"imports {b}, which imports both layers; import the defining module"
            found.append(violation(project.sources[a], edges[(a, b)], face_rule, detail))
    return found


def servers_import_only_their_rooms(project: Project) -> list[str]:
    found = []
    for server in project.servers:
        allowed = (server, *SERVER_PROJECT_IMPORTS.get(server, (ERRORS,)))
        rule = f"{server} imports only {', '.join(allowed[1:])} of the project"
        for source in project.in_package(server):
            for imp in source.imports:
                owner = project.owning_module(imp.target)
                if owner is None or any(within(owner, a) for a in allowed):
                    continue
                found.append(violation(source, imp.line, rule, f"imports {imp.shown}"))
    return found


def servers_never_import_spark_jobs(project: Project) -> list[str]:
    rule = "a server package imports nothing of spark_jobs (shared helpers live in a bottom room)"
    found, present = [], set()
    for server in project.servers:
        for source in project.in_package(server):
            for imp in source.imports:
                owner = project.owning_module(imp.target)
                if owner is None or not within(owner, JOBS):
                    continue
                present.add((source.module, owner))
                if (source.module, owner) not in PENDING_SERVER_JOB_IMPORTS:
                    found.append(violation(source, imp.line, rule, f"imports {imp.shown}"))
    return found + _stale(PENDING_SERVER_JOB_IMPORTS, present, rule)


def rooms_without_tables_write_only_what_is_listed(project: Project) -> list[str]:
    rule = (
        "udfs/ and the servers without a store write only the temporary folders and caches "
        "allow-listed in tests/test_architecture.py STORAGE_ALLOWED"
    )
    found = []
    used: set[tuple[str, str, str]] = set()
    for package in NO_STORAGE_PACKAGES:
        for source in project.in_package(package):
            parents, owners = _parents(source.tree), enclosing_functions(source.tree)
            for node in ast.walk(source.tree):
                what = _storage_write(node, parents)
                if what is None:
                    continue
                key = (source.path, owners.get(node, "<module>"), what)
                if key in STORAGE_ALLOWED:
                    used.add(key)
                else:
                    detail = f"{what}: {ast.unparse(node)}"
                    found.append(violation(source, getattr(node, "lineno", 0), rule, detail))
    stale = {k for k in STORAGE_ALLOWED.keys() - used if k[0].split("/")[0] in project.packages}
    found += [f"{p}: [{rule}] stale allow-list entry {f}/{c}" for p, f, c in sorted(stale)]
    return found


def table_jobs_are_run_of_spark_settings_spec(project: Project) -> list[str]:
    rule = "a job that computes tables defines run(spark, settings, spec) -> Result"
    found = []
    for job in TABLE_JOBS:
        source = project.sources.get(f"{JOBS}.{job}")
        if source is None:
            found.append(f"{JOBS}/{job}.py: [{rule}] the module is missing")
            continue
        runs = [
            node
            for node in source.tree.body
            if isinstance(node, ast.FunctionDef) and node.name == "run"
        ]
        if not runs:
            found.append(violation(source, 1, rule, "no module-level run()"))
            continue
        params = [a.arg for a in runs[0].args.args]
        if params != ["spark", "settings", "spec"] or runs[0].returns is None:
            returns = ast.unparse(runs[0].returns) if runs[0].returns else "?"
            shown = f"run({', '.join(params)}) -> {returns}"
            found.append(violation(source, runs[0].lineno, rule, shown))
    return found


def _command_decorators(fn: ast.FunctionDef) -> list[ast.Call]:
    """The decorators of `fn` that make a command: `lakegate_command(...)`, `x.command(...)`."""
    return [
        d
        for d in fn.decorator_list
        if isinstance(d, ast.Call) and _call_name(d) in {"lakegate_command", "command"}
    ]


def _command_problems(source: Source) -> list[tuple[int, str]]:
    """Why `source`'s commands are not typed: (line, problem); empty when they all are."""
    problems: list[tuple[int, str]] = []
    defs = [n for n in source.tree.body if isinstance(n, ast.FunctionDef)]
    for fn in defs:
        for call in _command_decorators(fn):
            if _call_name(call) != "lakegate_command":
                problems.append((call.lineno, f"{fn.name}: a click command, not lakegate_command"))
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            spec = keywords.get("spec", call.args[1] if len(call.args) > 1 else None)
            if spec is None or "render" not in keywords:
                problems.append((call.lineno, f"{fn.name}: lakegate_command without spec= render="))
                continue
            params = fn.args.args
            typed = (
                [a.arg for a in params] == ["job", "spec"]
                and params[1].annotation is not None
                and ast.unparse(params[1].annotation) == ast.unparse(spec)
                and fn.returns is not None
            )
            if not typed:
                problems.append(
                    (fn.lineno, f"{fn.name} is not (job, spec: {ast.unparse(spec)}) -> Result")
                )
    runs = [fn for fn in defs if fn.name == "run" or fn.name.startswith("run_")]
    typed_runs = [
        fn
        for fn in runs
        if fn.returns is not None
        and any(a.arg == "spec" and a.annotation is not None for a in fn.args.args)
    ]
    if not typed_runs or len(typed_runs) < len(runs):
        problems.append((1, "no module-level run(..., spec: Spec) -> Result"))
    return problems


def commands_take_a_spec_and_return_a_result(
    project: Project, pending: dict[str, str] = PENDING_COMMAND_SPECS
) -> list[str]:
    rule = (
        "a command is @lakegate_command(name, spec=Spec, render=...) over (job, spec) -> Result, "
        "its body a module-level run(..., spec: Spec) -> Result"
    )
    found = []
    for module in job_modules(project):
        source = project.sources[module]
        name = module.split(".", 1)[1]
        defines_command = any(
            _command_decorators(n) for n in source.tree.body if isinstance(n, ast.FunctionDef)
        )
        problems = _command_problems(source)
        if name in pending:
            if not problems:
                found.append(f"{source.path}: [{rule}] stale allow-list entry {name}")
        elif defines_command or name in COMMAND_SPECS:
            found += [violation(source, line, rule, problem) for line, problem in problems]
    for name in COMMAND_SPECS:
        if f"{JOBS}.{name}" not in project.sources:
            found.append(f"{JOBS}/{name}.py: [{rule}] the module is missing")
    return found


def no_module_imports_a_private_name_of_another_room(project: Project) -> list[str]:
    rule = (
        "no module imports a private name (_x) of another room's module; the owner gives it a "
        "public form"
    )
    found = []
    for source in project.sources.values():
        for imp in source.imports:
            owner = project.owning_module(imp.target)
            if owner is None or owner == imp.target or within(owner, source.package):
                continue
            name = imp.target[len(owner) + 1 :].split(".")[0]
            if name.startswith("_") and not name.startswith("__"):
                found.append(violation(source, imp.line, rule, f"{name} from {owner}"))
    return found


MAX_FUNCTION_LINES = 80


def functions_stay_short(project: Project) -> list[str]:
    rule = f"no product function is longer than {MAX_FUNCTION_LINES} lines (its docstring apart)"
    found = []
    for source in project.sources.values():
        for node in ast.walk(source.tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:] or body
            lines = (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1
            if lines > MAX_FUNCTION_LINES:
                detail = f"{node.name} has {lines} lines: split it into named steps"
                found.append(violation(source, node.lineno, rule, detail))
    return found


# --------------------------------------------------------------------------------------------
# The rules over this project


@pytest.fixture(scope="module")
def project() -> Project:
    found = load_project(ROOT)
    assert set(ROOMS) <= set(found.packages), f"the four rooms not all found: {found.packages}"
    return found


def test_lakegate_errors_imports_nothing_of_the_project(project: Project) -> None:
    fail_on(lakegate_errors_imports_nothing_of_the_project(project))


def test_lakegate_config_imports_only_lakegate_errors(project: Project) -> None:
    fail_on(lakegate_config_imports_only_lakegate_errors(project))


def test_checks_never_imports_spark_jobs_udfs_or_servers(project: Project) -> None:
    fail_on(checks_never_imports_jobs_udfs_or_servers(project))


def test_udfs_never_imports_spark_jobs_checks_or_servers(project: Project) -> None:
    fail_on(udfs_never_imports_jobs_checks_or_servers(project))


def test_services_never_import_a_job_entry_point(project: Project) -> None:
    assert f"{JOBS}.validate" in job_modules(project)
    fail_on(services_never_import_a_job(project))


def test_only_main_guards_import_the_cli(project: Project) -> None:
    fail_on(only_main_guards_import_the_cli(project))


def test_servers_never_import_pyspark_at_module_level(project: Project) -> None:
    if not project.servers:
        pytest.skip("no server package yet (a top-level package other than the four rooms)")
    fail_on(servers_never_load_pyspark_on_import(project))


def test_only_the_session_service_builds_a_spark_session(project: Project) -> None:
    fail_on(only_the_session_service_builds_a_session(project))


def test_table_reads_and_writes_go_through_table_io(project: Project) -> None:
    fail_on(table_io_goes_through_table_io(project))


def test_checks_writes_no_storage_except_the_deequ_metrics_repository(project: Project) -> None:
    fail_on(checks_writes_no_storage_but_the_metrics_repository(project))


def test_every_top_level_package_is_installed(project: Project) -> None:
    fail_on(every_package_is_installed(project))


def test_every_top_level_package_is_type_checked(project: Project) -> None:
    fail_on(every_package_is_type_checked(project))


def test_no_circle_of_module_level_imports(project: Project) -> None:
    fail_on(no_import_time_circles(project))


def test_no_circle_of_imports_but_those_pending_issue_32(project: Project) -> None:
    fail_on(no_import_circles_pending_issue_32(project))


def test_udfs_compiled_and_udfs_import_each_other_one_way(project: Project) -> None:
    fail_on(sub_rooms_import_their_parent_one_way(project))


def test_servers_import_only_their_rooms_of_the_project(project: Project) -> None:
    fail_on(servers_import_only_their_rooms(project))


def test_servers_import_nothing_of_spark_jobs_but_pending_settings(project: Project) -> None:
    fail_on(servers_never_import_spark_jobs(project))


def test_udfs_and_the_model_server_write_only_their_temporary_folders_and_caches(
    project: Project,
) -> None:
    fail_on(rooms_without_tables_write_only_what_is_listed(project))


def test_table_jobs_are_run_of_spark_settings_and_spec(project: Project) -> None:
    fail_on(table_jobs_are_run_of_spark_settings_spec(project))


def test_commands_take_a_spec_and_return_a_frozen_result_but_those_pending(
    project: Project,
) -> None:
    fail_on(commands_take_a_spec_and_return_a_result(project))


def test_no_module_imports_a_private_name_of_another_room(project: Project) -> None:
    fail_on(no_module_imports_a_private_name_of_another_room(project))


def test_no_product_function_is_longer_than_80_lines(project: Project) -> None:
    fail_on(functions_stay_short(project))


# --------------------------------------------------------------------------------------------
# Each rule catches a breach: a small project that breaks it


BREACHES: dict[str, tuple[Callable[[Project], list[str]], dict[str, str], str]] = {
    "lakegate_errors imports the project": (
        lakegate_errors_imports_nothing_of_the_project,
        {"lakegate_errors/__init__.py": "from checks import suite\n"},
        "lakegate_errors/__init__.py:1:",
    ),
    "lakegate_config imports checks": (
        lakegate_config_imports_only_lakegate_errors,
        {"lakegate_config/settings.py": "from checks.suite import Suite\n"},
        "lakegate_config/settings.py:1:",
    ),
    "a server imports spark_jobs": (
        servers_import_only_their_rooms,
        {"model_server/app.py": "from spark_jobs.services.reporting import Progress\n"},
        "model_server/app.py:1:",
    ),
    "checks imports a server lazily": (
        checks_never_imports_jobs_udfs_or_servers,
        {"checks/gate.py": "def f():\n    from model_server.app import x\n"},
        "checks/gate.py:2:",
    ),
    "checks imports spark_jobs for types only": (
        checks_never_imports_jobs_udfs_or_servers,
        {"checks/gate.py": "if TYPE_CHECKING:\n    from spark_jobs.services import settings\n"},
        "checks/gate.py:2:",
    ),
    "udfs imports checks relatively": (
        udfs_never_imports_jobs_checks_or_servers,
        {"udfs/compiled/verify.py": "from ...checks import gate\n"},
        "udfs/compiled/verify.py:1:",
    ),
    "a service imports a job": (
        services_never_import_a_job,
        {
            "spark_jobs/train.py": "",
            "spark_jobs/services/training.py": "from spark_jobs import train\n",
        },
        "spark_jobs/services/training.py:1:",
    ),
    "a job imports the cli at module level": (
        only_main_guards_import_the_cli,
        {
            "spark_jobs/sql.py": "from spark_jobs.cli import run_as_script\n"
            'if __name__ == "__main__":\n    run_as_script("sql")\n'
        },
        "spark_jobs/sql.py:1:",
    ),
    "a server imports pyspark through settings": (
        servers_never_load_pyspark_on_import,
        {
            "model_server/app.py": "from lakegate_config.settings import Settings\n",
            "lakegate_config/settings.py": "from checks.suite import Suite\n",
            "checks/suite.py": "from pyspark.sql.types import StructType\n",
        },
        "model_server.app -> lakegate_config.settings -> checks.suite -> pyspark.sql.types",
    ),
    "a job builds its own session": (
        only_the_session_service_builds_a_session,
        {"spark_jobs/train.py": "spark = SparkSession.builder.getOrCreate()\n"},
        "spark_jobs/train.py:1:",
    ),
    "udfs reads a table": (
        table_io_goes_through_table_io,
        {"udfs/scoring.py": "def f(spark):\n    return spark.read.parquet('x')\n"},
        "udfs/scoring.py:2:",
    ),
    "a job writes a table itself": (
        table_io_goes_through_table_io,
        {"spark_jobs/predict.py": "def f(df):\n    df.writeTo('t').append()\n"},
        "spark_jobs/predict.py:2:",
    ),
    "checks writes a file": (
        checks_writes_no_storage_but_the_metrics_repository,
        {"checks/quarantine.py": "def f(p):\n    with open(p, 'w') as out:\n        pass\n"},
        "checks/quarantine.py:2:",
    ),
    "a package is not installed": (
        every_package_is_installed,
        {"online_store/__init__.py": ""},
        "online_store is missing",
    ),
    "a package is not type-checked": (
        every_package_is_type_checked,
        {"online_store/__init__.py": ""},
        "online_store is missing",
    ),
    "a namespace package (no __init__.py) is not installed": (
        every_package_is_installed,
        {"feature_api/app.py": "import json\n"},
        "feature_api is missing",
    ),
    "a lazy import closes a circle": (
        no_import_circles_pending_issue_32,
        {
            "checks/suite.py": "def f():\n    from checks import gate\n",
            "checks/gate.py": "from checks.suite import Suite\n",
        },
        "checks/suite.py:2:",
    ),
    "a module-level circle": (
        no_import_time_circles,
        {"checks/a.py": "from checks import b\n", "checks/b.py": "import checks.a\n"},
        "checks/a.py:1:",
    ),
    "udfs and udfs.compiled import each other": (
        sub_rooms_import_their_parent_one_way,
        {
            "udfs/compiled/verify.py": "from udfs.scoring import score\n",
            "udfs/scoring.py": "def f():\n    from udfs.compiled import verify\n",
        },
        "[udfs.compiled and the rest of udfs import each other one way only]",
    ),
    "a udfs module imports the package's face": (
        sub_rooms_import_their_parent_one_way,
        {
            "udfs/__init__.py": "from udfs.compiled.verify import check\n",
            "udfs/compiled/verify.py": "from udfs import ModelUsageError\n",
        },
        "udfs/compiled/verify.py:1: [no module of udfs imports the package's face",
    ),
    "a server imports a service": (
        servers_never_import_spark_jobs,
        {
            "model_server/app.py": "from spark_jobs.services import table_io\n",
            "spark_jobs/services/table_io.py": "",
        },
        "model_server/app.py:1:",
    ),
    "a server imports checks": (
        servers_import_only_their_rooms,
        {"model_server/app.py": "from checks.suite import load_suite\n", "checks/suite.py": ""},
        "model_server/app.py:1:",
    ),
    "the online store imports udfs": (
        servers_import_only_their_rooms,
        {"online_store/store.py": "import udfs.scoring\n", "udfs/scoring.py": ""},
        "online_store/store.py:1:",
    ),
    "udfs writes a file": (
        rooms_without_tables_write_only_what_is_listed,
        {"udfs/scoring.py": "def f(p):\n    p.write_text('x')\n"},
        "udfs/scoring.py:2:",
    ),
    "a table job's run takes no settings": (
        table_jobs_are_run_of_spark_settings_spec,
        {"spark_jobs/validate.py": "def run(spark, spec):\n    pass\n"},
        "spark_jobs/validate.py:1:",
    ),
    "a command without a spec": (
        commands_take_a_spec_and_return_a_result,
        {
            "spark_jobs/sql.py": '@lakegate_command("sql")\n'
            "def command(job, query):\n    pass\n"
            "def run(spark, settings, spec: S) -> R:\n    pass\n"
        },
        "spark_jobs/sql.py:1: [a command is @lakegate_command",
    ),
    "a command whose body takes options, not the spec": (
        commands_take_a_spec_and_return_a_result,
        {
            "spark_jobs/sql.py": '@lakegate_command("sql", spec=S, render=r)\n'
            "def command(job, query) -> R:\n    pass\n"
            "def run(spark, settings, spec: S) -> R:\n    pass\n"
        },
        "spark_jobs/sql.py:2:",
    ),
    "a typed command without a module-level run": (
        commands_take_a_spec_and_return_a_result,
        {
            "spark_jobs/sql.py": '@lakegate_command("sql", spec=S, render=r)\n'
            "def command(job, spec: S) -> R:\n    pass\n"
        },
        "no module-level run",
    ),
    "a new command bypasses lakegate_command": (
        commands_take_a_spec_and_return_a_result,
        {"spark_jobs/export.py": '@click.command("export")\ndef command(path):\n    pass\n'},
        "spark_jobs/export.py:1:",
    ),
    "a pending command that is typed": (
        functools.partial(commands_take_a_spec_and_return_a_result, pending={"serve": "pending"}),
        {
            "spark_jobs/serve.py": '@lakegate_command("serve", spec=S, render=r)\n'
            "def command(job, spec: S) -> R:\n    pass\n"
            "def run(settings, spec: S) -> R:\n    pass\n"
        },
        "stale allow-list entry serve",
    ),
    "a job imports a private helper of checks": (
        no_module_imports_a_private_name_of_another_room,
        {
            "spark_jobs/services/stream_state.py": "from checks.gate import Gate, _rounds\n",
            "checks/gate.py": "def _rounds():\n    pass\n",
        },
        "spark_jobs/services/stream_state.py:1:",
    ),
    "a function of 81 lines": (
        functions_stay_short,
        {"checks/gate.py": 'def f():\n    """Doc."""\n' + "    x = 1\n" * 81},
        "checks/gate.py:1: [no product function is longer than 80 lines",
    ),
}


@pytest.mark.parametrize("breach", list(BREACHES))
def test_each_rule_catches_a_breach(breach: str, tmp_path: Path) -> None:
    rule, files, expected = BREACHES[breach]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.packages.find]\ninclude = ["spark_jobs*", "udfs*", "checks*", '
        '"lakegate_errors*", "model_server*"]\n[tool.mypy]\npackages = ["spark_jobs", "udfs", '
        '"checks", "lakegate_errors", "model_server"]\n'
    )
    for package in (*ROOMS, SERVICES.replace(".", "/"), "udfs/compiled", "model_server"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    found = rule(load_project(tmp_path))
    assert any(expected in line for line in found), found
