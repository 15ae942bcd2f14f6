"""Where each character of a YAML scalar's value sits in its file: replays how YAML turned the source text
into the string (plain, quoted with escapes, literal `|` and folded `>` blocks), so an error at a column
inside a template or a segment expression lands on the right character of the file.
"""

from __future__ import annotations

import re

from ruamel.yaml.nodes import ScalarNode

# 0-based (line, column) of each character of a scalar's value in the file.
Positions = list[tuple[int, int]]
FOLD_MARK = "\x07"  # ruamel marks where a folded block scalar folded a line break
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def split_lines(text: str) -> list[str]:
    """The lines of `text` as YAML counts them (str.splitlines knows more line breaks than YAML does)."""
    return _LINE_BREAK.split(text)


def scalar_positions(node: ScalarNode, lines: list[str]) -> Positions | None:
    """0-based file position of each character of the scalar's value, or None when it cannot be worked out.

    The replay is checked against the value ruamel produced, so a style this code gets wrong gives None,
    never a wrong position.
    """
    value = str(node.value).replace(FOLD_MARK, "")
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


def _block(node: ScalarNode, lines: list[str]) -> tuple[str, Positions]:
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


def _literal_lines(content: list[tuple[int, str]], indent: int) -> tuple[str, Positions]:
    chars: list[str] = []
    positions: Positions = []
    for line_no, text in content:
        for j, ch in enumerate(text):
            chars.append(ch)
            positions.append((line_no, indent + j))
        chars.append("\n")
        positions.append((line_no, indent + len(text)))
    return "".join(chars), positions


def _folded_lines(content: list[tuple[int, str]], indent: int) -> tuple[str, Positions]:
    chars: list[str] = []
    positions: Positions = []
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


def _plain(node: ScalarNode, lines: list[str]) -> tuple[str, Positions]:
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


def _quoted(node: ScalarNode, lines: list[str]) -> tuple[str, Positions]:
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


def _fold(pieces: list[list[tuple[str, tuple[int, int]]]], joined: list[bool]) -> tuple[str, Positions]:
    """Flow line folding: a line break becomes a space, or n newlines after n empty lines; `joined[i]` says
    line i ended in an escaped line break (no separator at all)."""
    chars: list[str] = []
    positions: Positions = []
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
