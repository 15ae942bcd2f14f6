"""YAML documents that remember where each value came from, so errors can say PATH:LINE:COL.

A file is parsed twice: once into ruamel's node tree, which keeps the start and end of every node, and once
into plain (round-trip) data for validation. Positions come from the node tree; positions *inside* a string
(a template, a segment expression) come from replaying how YAML turned the source text into the string, so
a column inside a folded (`>`) block or a quoted string with escapes still lands on the right character.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from outreach.errors import InputError, Problem

Loc = Sequence[str | int]
# 0-based (line, column) of each character of a scalar's value in the file.
_Positions = list[tuple[int, int]]

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FOLD_MARK = "\x07"  # ruamel marks where a folded block scalar folded a line break
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


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
        value = str(node.value).replace(_FOLD_MARK, "")
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


def split_lines(text: str) -> list[str]:
    """The lines of `text` as YAML counts them (str.splitlines knows more line breaks than YAML does)."""
    return _LINE_BREAK.split(text)


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


def scalar_positions(node: ScalarNode, lines: list[str]) -> _Positions | None:
    """0-based file position of each character of the scalar's value, or None when it cannot be worked out.

    The replay is checked against the value ruamel produced, so a style this code gets wrong gives None,
    never a wrong position.
    """
    value = str(node.value).replace(_FOLD_MARK, "")
    try:
        if node.style in ("|", ">"):
            chars, positions = _block(node, lines)
        elif node.style in ('"', "'"):
            chars, positions = _quoted(node, lines)
        else:
            chars, positions = _plain(node, lines)
    except IndexError:
        return None
    if node.style in ("|", ">"):
        # chomping only ever changes trailing line breaks
        if chars.rstrip("\n") != value.rstrip("\n") or len(chars) < len(value):
            return None
        return positions[: max(len(value), 1)]
    if chars != value:
        return None
    return positions


def _block(node: ScalarNode, lines: list[str]) -> tuple[str, _Positions]:
    header_line = node.start_mark.line
    header = lines[header_line][node.start_mark.column :]
    indicator = re.match(r"[|>][+-]?([1-9]?)", header)
    explicit = int(indicator.group(1)) if indicator and indicator.group(1) else 0
    body = range(header_line + 1, min(node.end_mark.line + 1, len(lines)))
    if explicit:
        base = len(lines[header_line]) - len(lines[header_line].lstrip(" "))
        indent = base + explicit
    else:
        first = next((lines[i] for i in body if lines[i].strip(" ")), "")
        indent = len(first) - len(first.lstrip(" "))
    content: list[tuple[int, str]] = []  # (line number, text after the indentation)
    for i in body:
        line = lines[i]
        if line.strip(" ") and len(line) - len(line.lstrip(" ")) < indent:
            break
        content.append((i, line[indent:]))
    if node.style == "|":
        return _literal_lines(content, indent)
    return _folded_lines(content, indent)


def _literal_lines(content: list[tuple[int, str]], indent: int) -> tuple[str, _Positions]:
    chars: list[str] = []
    positions: _Positions = []
    for line_no, text in content:
        for j, ch in enumerate(text):
            chars.append(ch)
            positions.append((line_no, indent + j))
        chars.append("\n")
        positions.append((line_no, indent + len(text)))
    return "".join(chars), positions


def _folded_lines(content: list[tuple[int, str]], indent: int) -> tuple[str, _Positions]:
    chars: list[str] = []
    positions: _Positions = []
    previous: tuple[int, str] | None = None  # the last line with text
    empties: list[int] = []
    for line_no, text in content:
        # Only a line of nothing beyond the indentation is empty: one with more spaces is a (spaced) text line.
        if text == "":
            empties.append(line_no)
            continue
        if previous is not None:
            prev_no, prev_text = previous
            end = (prev_no, indent + len(prev_text))
            spaced = prev_text[:1] in (" ", "\t") or text[:1] in (" ", "\t")
            if spaced:
                chars.append("\n")
                positions.append(end)
            elif not empties:
                chars.append(" ")
                positions.append(end)
        for e in empties:
            chars.append("\n")
            positions.append((e, indent))
        empties = []
        for j, ch in enumerate(text):
            chars.append(ch)
            positions.append((line_no, indent + j))
        previous = (line_no, text)
    if previous is not None:
        prev_no, prev_text = previous
        chars.append("\n")
        positions.append((prev_no, indent + len(prev_text)))
    for e in empties:
        chars.append("\n")
        positions.append((e, indent))
    return "".join(chars), positions


def _segments(node: ScalarNode, lines: list[str], inset: int) -> list[tuple[int, int, str]]:
    """(line, start column, text) of each source line of a flow scalar, without `inset` quote characters."""
    start, end = node.start_mark, node.end_mark
    if start.line == end.line:
        return [(start.line, start.column + inset, lines[start.line][start.column + inset : end.column - inset])]
    out = [(start.line, start.column + inset, lines[start.line][start.column + inset :])]
    out.extend((i, 0, lines[i]) for i in range(start.line + 1, end.line))
    out.append((end.line, 0, lines[end.line][: end.column - inset]))
    return out


def _plain(node: ScalarNode, lines: list[str]) -> tuple[str, _Positions]:
    pieces: list[list[tuple[str, tuple[int, int]]]] = []
    for line_no, col, text in _segments(node, lines, 0):
        stripped = text.lstrip(" \t")
        col += len(text) - len(stripped)
        stripped = stripped.rstrip(" \t")
        pieces.append([(ch, (line_no, col + j)) for j, ch in enumerate(stripped)])
    return _fold(pieces, [False] * len(pieces))


_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r",
    "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0", "L": "\u2028",
    "P": "\u2029",
}  # fmt: skip
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _quoted(node: ScalarNode, lines: list[str]) -> tuple[str, _Positions]:
    double = node.style == '"'
    pieces: list[list[tuple[str, tuple[int, int]]]] = []
    escaped_breaks: list[bool] = []
    segments = _segments(node, lines, 1)
    for index, (line_no, col, text) in enumerate(segments):
        piece: list[tuple[str, tuple[int, int]]] = []
        literal: list[bool] = []  # whether a character was written as itself (trailing blanks of those fold away)
        j = 0
        if index > 0:
            j = len(text) - len(text.lstrip(" \t"))
        escaped_break = False
        while j < len(text):
            ch = text[j]
            where = (line_no, col + j)
            if double and ch == "\\":
                if j + 1 >= len(text):
                    escaped_break = True
                    j += 1
                    continue
                code = text[j + 1]
                if code in _HEX_ESCAPES:
                    width = _HEX_ESCAPES[code]
                    piece.append((chr(int(text[j + 2 : j + 2 + width], 16)), where))
                    j += 2 + width
                else:
                    piece.append((_ESCAPES[code], where))
                    j += 2
                literal.append(False)
                continue
            if not double and ch == "'" and text[j + 1 : j + 2] == "'":
                piece.append(("'", where))
                literal.append(False)
                j += 2
                continue
            piece.append((ch, where))
            literal.append(True)
            j += 1
        if index < len(segments) - 1 and not escaped_break:
            while piece and literal[-1] and piece[-1][0] in " \t":
                piece.pop()
                literal.pop()
        pieces.append(piece)
        escaped_breaks.append(escaped_break)
    return _fold(pieces, escaped_breaks)


def _fold(pieces: list[list[tuple[str, tuple[int, int]]]], joined: list[bool]) -> tuple[str, _Positions]:
    """Flow line folding: a line break becomes a space, or n newlines after n empty lines; `joined[i]` says
    line i ended in an escaped line break (no separator at all)."""
    chars: list[str] = []
    positions: _Positions = []
    empties = 0
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        if index > 0 and not joined[index - 1]:
            if not piece and index < last:
                empties += 1
                continue
            where = positions[-1] if positions else piece[0][1] if piece else (0, 0)
            separator = "\n" * empties if empties else " "
            chars.extend(separator)
            positions.extend([where] * len(separator))
            empties = 0
        for ch, where in piece:
            chars.append(ch)
            positions.append(where)
    return "".join(chars), positions


# -- parsing -------------------------------------------------------------------------------------------


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
