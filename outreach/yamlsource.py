"""YAML documents that remember where each value came from, so errors can say PATH:LINE:COL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from outreach.errors import InputError, Problem

Loc = Sequence[str | int]


@dataclass(frozen=True)
class YamlDocument:
    path: str
    text: str
    data: Any

    def problem(self, loc: Loc, message: str, *, at_key: bool = False) -> Problem:
        line, col = self.locate(loc, at_key=at_key)
        return Problem(self.path, line, col, message)

    def locate(self, loc: Loc, *, at_key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at `loc` (or of its key), or of the nearest parent found."""
        node = self.data
        line, col = 0, 0
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.key(part) if (last and at_key) else node.lc.value(part)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            else:
                if isinstance(node, CommentedMap | CommentedSeq) and i == 0:
                    line, col = node.lc.line, node.lc.col
                break
        return line + 1, col + 1

    def text_position(self, loc: Loc, line_in_text: int = 1, col_in_text: int | None = None) -> tuple[int, int | None]:
        """Where a position inside a string value lies in the file (for template and expression errors).

        Exact for block scalars (`|`, `>`) and single-line quoted or plain scalars; for others, the line of
        the value.
        """
        line, col = self.locate(loc)
        value = self._value(loc)
        if isinstance(value, LiteralScalarString | FoldedScalarString):
            return line + line_in_text, None if col_in_text is None else self._block_indent(line) + col_in_text
        if line_in_text == 1 and col_in_text is not None:
            quoted = isinstance(value, DoubleQuotedScalarString | SingleQuotedScalarString)
            return line, col + col_in_text - 1 + (1 if quoted else 0)
        return line + line_in_text - 1, None

    def _value(self, loc: Loc) -> Any:
        node = self.data
        for part in loc:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def _block_indent(self, indicator_line: int) -> int:
        lines = self.text.splitlines()
        if indicator_line < len(lines):
            following = lines[indicator_line]
            return len(following) - len(following.lstrip(" "))
        return 0


def load_yaml(path: Path) -> YamlDocument:
    """Parse a YAML file keeping positions; syntax errors and duplicate keys become InputError."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError.single(name, "no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError.single(name, f"not UTF-8 text ({exc.reason})") from None
    return parse_yaml(name, text)


def parse_yaml(name: str, text: str) -> YamlDocument:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise InputError.single(name, str(message)) from None
        raise InputError.single(name, str(message), mark.line + 1, mark.column + 1) from None
    except YAMLError as exc:
        raise InputError.single(name, f"invalid YAML: {exc}") from None
    return YamlDocument(name, text, data)
