"""YAML documents that remember where each value came from.

Configuration and suites are validated with pydantic; this module keeps the line of every
mapping key and list item so a validation error can name the line a person has to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from lakegate_errors import UserError

Location = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


class DocumentError(UserError, ValueError):
    """A configuration or suite file that cannot be used as it is."""


class HostileDocument(DocumentError):
    """A document built to exhaust its reader: too deep, or too many values through aliases."""


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file and the line (1-based) of each value, keyed by its path."""

    path: Path
    data: Any
    lines: dict[Location, int] = field(default_factory=dict)

    def line_of(self, location: Location) -> int | None:
        """Return the line of `location`, or of its closest parent that has one."""
        loc = tuple(location)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())

    def where(self, location: Location) -> str:
        """Return `file:line` for a location, for error messages."""
        line = self.line_of(location)
        return f"{self.path}:{line}" if line else str(self.path)


# Hostile documents are refused with their line instead of exhausting the process: nesting
# deeper than this many levels, or more values than this once aliases are expanded (a "billion
# laughs" document of nested aliases).
MAX_DEPTH = 100
MAX_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Builder:
    """Python values of a composed YAML tree, with the line of every key and item."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[Location, int] = {}
        self.values = 0
        self.open_nodes: set[int] = set()  # collections being built: an alias to one is a loop
        self.scalars = yaml.constructor.SafeConstructor()

    def refuse(self, node: yaml.Node, problem: str, hostile: bool = False) -> DocumentError:
        error = HostileDocument if hostile else DocumentError
        return error(f"{self.path}:{node.start_mark.line + 1}: {problem}")

    def build(self, node: yaml.Node, loc: Location) -> Any:
        self.lines[loc] = node.start_mark.line + 1
        self.values += 1
        if self.values > MAX_VALUES:
            raise self.refuse(node, f"more than {MAX_VALUES} values once aliases expand", True)
        if len(loc) > MAX_DEPTH:
            raise self.refuse(node, f"nested deeper than {MAX_DEPTH} levels", True)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self.open_nodes:
            raise self.refuse(node, "an alias refers to a value that contains it", True)
        self.open_nodes.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, loc)
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        finally:
            self.open_nodes.discard(id(node))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.refuse(node, f"not a value lakegate reads ({problem})") from None

    def mapping(self, node: yaml.MappingNode, loc: Location) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        explicit = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *defaults`: keys written here win
                result.update(self.merged(value_node, loc))
        for key_node, value_node in explicit:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.refuse(key_node, "a key must be a plain value (text or a number)")
            key = self.scalar(key_node)
            result[key] = self.build(value_node, (*loc, key))
            self.lines[(*loc, key)] = key_node.start_mark.line + 1
        return result

    def merged(self, node: yaml.Node, loc: Location) -> dict[Any, Any]:
        """The mapping(s) a merge key names; of several, the earlier ones win."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict[Any, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise self.refuse(source, "`<<` merges mappings only")
            result.update(self.build(source, loc))
        return result


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _DepthLimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than MAX_DEPTH as it composes.

    PyYAML composes recursively and its scanner slows down with depth: stopping at the limit
    answers in milliseconds where a RecursionError would come after seconds.
    """

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooDeep(mark.line + 1 if mark else 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _not_yaml(path: Path, exc: yaml.YAMLError) -> DocumentError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark else f"{path}:1"
    problem = getattr(exc, "problem", None) or str(exc)
    return DocumentError(f"{where}: not valid YAML ({problem})")


def _compose(path: Path, text: str) -> yaml.Node | None:
    """The YAML tree of `text`; a DocumentError with the line when it cannot be read."""
    try:
        return yaml.compose(text, Loader=_DepthLimitedLoader)
    except _TooDeep as exc:
        raise HostileDocument(f"{path}:{exc.line}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        raise _not_yaml(path, exc) from None


def read_document_text(path: Path) -> str:
    """The file's text; a DocumentError naming the line of a byte that is not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DocumentError(f"{path}: file not found") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DocumentError(
            f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None


def load_yaml_document(path: str | Path) -> YamlDocument:
    """Parse a YAML file, keeping the line of every key and item.

    Raises:
        DocumentError: the file is missing, not UTF-8, not valid YAML, or hostile (nested
            deeper than MAX_DEPTH, an alias inside itself, more than MAX_VALUES values once
            aliases are expanded); the message names the line.
    """
    path = Path(path)
    node = _compose(path, read_document_text(path))
    if node is None:  # empty, or comments only: a mapping with nothing in it, at line 1
        return YamlDocument(path=path, data={}, lines={(): 1})
    builder = _Builder(path)
    data = builder.build(node, ())
    lines = builder.lines
    return YamlDocument(path=path, data=data, lines=lines)


def describe_validation_error(
    document: YamlDocument, error: ValidationError, prefix: Location = ()
) -> str:
    """Turn a pydantic error into lines of `file:line: field: problem`."""
    messages = []
    for item in error.errors():
        loc = (*prefix, *item["loc"])
        readable = ".".join(str(part) for part in loc) or "(document)"
        messages.append(f"{document.where(loc)}: {readable}: {item['msg']}")
    return "\n".join(messages)


def parse_document(document: YamlDocument, model: type[ModelT]) -> ModelT:
    """Validate a document's data into `model`, naming file and line on failure.

    Raises:
        DocumentError: the data does not fit the model.
    """
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        raise DocumentError(describe_validation_error(document, exc)) from None
