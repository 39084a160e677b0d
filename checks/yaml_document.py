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


def _construct(node: yaml.Node, loc: Location, lines: dict[Location, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            lines[(*loc, key)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def load_yaml_document(path: str | Path) -> YamlDocument:
    """Parse a YAML file, keeping the line of every key and item.

    Raises:
        DocumentError: the file is missing or is not valid YAML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError(f"{path}: file not found") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(f"{where}: not valid YAML ({problem})") from None
    lines: dict[Location, int] = {}
    data = {} if node is None else _construct(node, (), lines)
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
