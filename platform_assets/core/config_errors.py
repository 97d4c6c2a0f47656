"""Reading the platform's YAML files and turning pydantic's validation errors into one-line messages.

Every configuration file (``tables.yaml``, ``config/<env>.yaml``, stream declarations) is read the same
way: PyYAML's safe loader without implicit timestamps and with duplicate keys refused
(:class:`YamlLoader`), keeping the line of every key (:func:`parse_yaml`), then validated by a pydantic
model whose validators raise ``ValueError("<what is wrong>")``. :func:`problems` reads the
``ValidationError`` back as :class:`Problem` s (where, and what is wrong in words), and
:func:`line_of` finds the line that set the value, so the caller can print one line naming the file, the
line and the field without ever quoting a value a validator chose not to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from platform_assets.core.errors import ConfigurationError

Location = tuple[str | int, ...]


class DuplicateKeyError(ConfigurationError, yaml.constructor.ConstructorError):
    """A key given twice in one mapping. PyYAML would keep the last value without a word, so a table's
    second ``key:`` or an environment's second ``batch_size:`` would silently win. Raised while a file is
    read, caught by the reader and reported as a ``ConfigError`` naming file and line. Not retryable."""

    def __init__(self, key: Any, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__(None, None, f"duplicate key {key!r} (first on line {first.line + 1})", again)


class YamlLoader(yaml.SafeLoader):
    """How the platform reads its YAML files (``tables.yaml``, ``config/<env>.yaml``): PyYAML's safe
    loader, with two changes. No implicit timestamps: ``2025-13-45`` stays text, so validation can name
    its file and field (PyYAML would fail on it with neither in the message). And a key given twice in
    one mapping is an error, not a silent overwrite (a merge key ``<<`` may still be overridden)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # every mapping passes here before its merge keys are expanded: its own keys are checked once
        if id(node) not in self._checked:
            self._checked.add(id(node))
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:
                    continue  # an unhashable key: SafeConstructor reports it
                if first is not key_node.start_mark:
                    raise DuplicateKeyError(key, first, key_node.start_mark)
        super().flatten_mapping(node)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        # only for an explicit !!timestamp tag: an impossible date is a marked error, not a ValueError
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid timestamp ({exc})", node.start_mark
            ) from None


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", YamlLoader.construct_yaml_timestamp)


def _node_lines(node: yaml.Node | None, at: Location, lines: dict[Location, int]) -> None:
    """The line (from 1) of every value under ``node``, by its location (keys and list positions)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                here = (*at, key_node.value)
                lines.setdefault(here, key_node.start_mark.line + 1)
                _node_lines(value_node, here, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*at, index)
            lines.setdefault(here, item.start_mark.line + 1)
            _node_lines(item, here, lines)


def parse_yaml_lines(text: str) -> tuple[Any, dict[Location, int]]:
    """The document in ``text`` and the line (from 1) of every key and list item in it, by location:
    ``("tables", 2, "key")`` is the third table's ``key:``. Raises ``yaml.YAMLError`` (see
    :func:`yaml_problem`)."""
    loader = YamlLoader(text)
    try:
        node = loader.get_single_node()
        document = None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[Location, int] = {}
    _node_lines(node, (), lines)
    return document, lines


def parse_yaml(text: str) -> tuple[Any, dict[Any, int]]:
    """The document in ``text`` and the line (from 1) of each key of its top-level mapping, so a
    message can point at the line that set a value. Raises ``yaml.YAMLError`` (see :func:`yaml_problem`)."""
    document, lines = parse_yaml_lines(text)
    return document, {loc[0]: line for loc, line in lines.items() if len(loc) == 1}


def yaml_problem(path: Path | str, exc: yaml.YAMLError) -> str:
    """One line for a file that cannot be read: ``<path>, line L: duplicate key 'x' (first on line F)``
    or ``<path>, line L, column C: not valid YAML: <problem>``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, DuplicateKeyError) and mark is not None:
        return f"{path}, line {mark.line + 1}: {problem}"
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{path}{where}: not valid YAML: {problem}"


def line_of(lines: Mapping[Location, int], loc: Sequence[str | int]) -> int | None:
    """The line of the deepest part of ``loc`` the file spelled out (a missing field: its parent's)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


@dataclass(frozen=True)
class Problem:
    """One error of a ``ValidationError``: where (``loc``, the field path as given) and what, in words
    (``message``, e.g. ``must be one of polars, spark, got 'duckdb'``)."""

    loc: Location
    message: str

    def dotted(self) -> str:
        """``tables.2.key`` style: the location as one word."""
        return ".".join(str(part) for part in self.loc)


def _message(error: Mapping[str, Any]) -> str:
    """A pydantic error in the platform's words. A validator's own ``ValueError`` is taken as it is;
    pydantic's built-in errors are put in the same style (never quoting the value of a string type, so
    a field typed as a secret is never shown)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "assertion_error" and "error" in ctx:
        return str(ctx["error"]) or "is not valid"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?').replace(' or ', ', ')}"
    return str(error["msg"][:1].lower() + error["msg"][1:])


def problems(exc: ValidationError) -> list[Problem]:
    """Every error of ``exc`` as a :class:`Problem`, in pydantic's order (the first is the one to show).
    Pydantic's own wrappers (``function-after[...]``, tagged unions) are left out of the location."""
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
        found.append(Problem(loc, _message(error)))
    return found


def where(path: Path | str | None, line: int | None) -> str:
    """``<path>, line <n>``, ``<path>`` or "" (no file: a value built in code)."""
    if path is None:
        return ""
    return f"{path}, line {line}" if line else str(path)
