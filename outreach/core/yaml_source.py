"""YAML documents that remember where each value came from, so errors can say PATH:LINE:COL.

A file is parsed twice: once into ruamel's node tree, which keeps the start and end of every node, and once
into plain (round-trip) data for validation. Positions come from the node tree; positions *inside* a string
(a template, a segment expression) come from replaying how YAML turned the source text into the string, so
a column inside a folded (`>`) block or a quoted string with escapes still lands on the right character.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from outreach.core.errors import InputError, Problem
from outreach.core.yaml_scalars import FOLD_MARK, scalar_positions, split_lines

Loc = Sequence[str | int]

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class YamlDocument:
    path: str
    text: str
    data: Any
    root: Node | None = None

    def problem(self, loc: Loc, message: str, *, at_key: bool = False) -> Problem:
        line, col = self.locate(loc, at_key=at_key)
        return Problem(self.path, line, col, message)

    def locate(self, loc: Loc, *, at_key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at `loc` (or of its key), or of the nearest parent found.

        An empty value (`key:` with nothing after it) is located at its key.
        """
        key, node, complete = self._find(loc)
        if node is None:
            return 1, 1
        target = node
        if key is not None and complete and (at_key or _is_empty(node)):
            target = key
        return target.start_mark.line + 1, target.start_mark.column + 1

    def text_position(self, loc: Loc, line_in_text: int = 1, col_in_text: int = 1) -> tuple[int, int]:
        """Where a 1-based position inside the string value at `loc` lies in the file (1-based).

        Exact for every scalar style when the value is found; otherwise the position of the value itself.
        """
        _key, node, complete = self._find(loc)
        if not complete or not isinstance(node, ScalarNode):
            return self.locate(loc)
        value = str(node.value).replace(FOLD_MARK, "")
        positions = scalar_positions(node, split_lines(self.text))
        if not positions:
            line, col = self.locate(loc)
            return line, col + (1 if node.style in ('"', "'") else 0)
        offset = _offset(value, line_in_text, col_in_text)
        if offset < len(positions):
            line, col = positions[offset]
        else:  # just past the end of the value
            line, col = positions[-1]
            col += 1
        return line + 1, col + 1

    def _find(self, loc: Loc) -> tuple[Node | None, Node | None, bool]:
        """(key node, value node, whether the whole of `loc` was found) of the deepest node along `loc`."""
        key: Node | None = None
        node = self.root
        if node is None:
            return None, None, False
        for part in loc:
            if isinstance(node, MappingNode):
                pair = next(
                    ((k, v) for k, v in node.value if isinstance(k, ScalarNode) and str(k.value) == str(part)), None
                )
                if pair is None:
                    return key, node, False
                key, node = pair
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                key, node = None, node.value[part]
            else:
                return key, node, False
        return key, node, True


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG and node.start_mark.index == node.end_mark.index


def _offset(value: str, line: int, col: int) -> int:
    """0-based index into `value` of 1-based (line, col), counting lines by \\n."""
    offset = 0
    for _ in range(max(line, 1) - 1):
        newline = value.find("\n", offset)
        if newline < 0:
            break
        offset = newline + 1
    return offset + max(col, 1) - 1


# -- where each character of a scalar came from ----------------------------------------------------------


def load_yaml(path: Path) -> YamlDocument:
    """Parse a YAML file keeping positions; syntax errors and duplicate keys become InputError."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError.single(name, "no such file") from None
    except IsADirectoryError:
        raise InputError.single(name, "is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise InputError.single(name, f"not UTF-8 text ({exc.reason})") from None
    return parse_yaml(name, text)


def parse_yaml(name: str, text: str) -> YamlDocument:
    try:
        root = YAML(typ="rt").compose(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(name, exc) from None
    except YAMLError as exc:
        raise InputError.single(name, f"invalid YAML: {exc}") from None
    duplicates = _duplicate_keys(name, root)
    if duplicates:
        raise InputError(duplicates)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(name, exc) from None
    except YAMLError as exc:
        raise InputError.single(name, f"invalid YAML: {exc}") from None
    return YamlDocument(name, text, data, root)


def _syntax_error(name: str, exc: MarkedYAMLError) -> InputError:
    mark = exc.problem_mark or exc.context_mark
    message = str(exc.problem or exc.context or "invalid YAML")
    if "cannot start any token" in message and "\\t" in message:
        message = "a tab character: indent YAML with spaces, not tabs"
    else:
        message = f"YAML syntax error: {message}"
        if exc.problem and exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            started = exc.context_mark
            message += f" ({exc.context} started at line {started.line + 1}, column {started.column + 1})"
    if mark is None:
        return InputError.single(name, message)
    return InputError.single(name, message, mark.line + 1, mark.column + 1)


def _duplicate_keys(name: str, root: Node | None) -> list[Problem]:
    """Every key written twice in the same mapping, located at its second appearance."""
    problems: list[Problem] = []
    stack = [root] if root is not None else []
    seen_nodes: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases share nodes
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[tuple[str, str], Node] = {}
            for key, value in node.value:
                stack.append(value)
                if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                    continue
                ident = (str(key.tag), str(key.value))
                if ident in first:
                    earlier = first[ident].start_mark
                    problems.append(
                        Problem(
                            name,
                            key.start_mark.line + 1,
                            key.start_mark.column + 1,
                            f"duplicate key {key.value!r}: it is already set on line {earlier.line + 1}",
                        )
                    )
                else:
                    first[ident] = key
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return problems
