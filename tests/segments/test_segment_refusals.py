"""Refused segments: an expression outside the documented language says why and at which column, deep nesting
is refused rather than crashing, and names are checked once the attributes are known."""

from __future__ import annotations

import pytest

from outreach.segments.compiler import check_segment, compile_segment
from outreach.segments.syntax import SegmentError
from tests.segment_reference import CATALOG, TODAY

REFUSED = [
    # (segment, 1-based column, part of the message)
    ("__import__('os')", 1, "the functions a segment may call are days_ago"),
    ("__import__('os').system('rm -rf /') == 0", 1, "the functions a segment may call are days_ago"),
    ("age > 5 and open('x')", 13, "the functions a segment may call are days_ago"),
    ("eval('1') == 1", 1, "the functions a segment may call are days_ago"),
    ("days_ago(3)", 1, "is a date, not a condition: compare a field with it"),
    ("last_login < days_ago", 14, "days_ago is a function"),
    (
        "last_login < days_ago(-1)",
        14,
        "days_ago takes ",
    ),
    (
        "last_login < days_ago(1.5)",
        14,
        "days_ago takes ",
    ),
    (
        "last_login < days_ago(n=3)",
        14,
        "days_ago takes ",
    ),
    ("last_login < days_ago(100000000)", 14, "days_ago"),
    ("a.__class__", 1, "attribute access (a.b) is not allowed"),
    ("age.__class__ == 1", 1, "attribute access (a.b) is not allowed"),
    ("vip and ().__class__.__bases__[0].__subclasses__()", 9, "the functions a segment may call are"),
    ("products[0] == 'loan'", 1, "indexing (a[b]) is not allowed"),
    ("lambda: True", 1, "lambda is not allowed"),
    ("(lambda: 1)() == 1", 1, "the functions a segment may call are"),
    ("age + 1 > 18", 1, "arithmetic is not allowed"),
    ("age > 17 + 1", 7, "arithmetic is not allowed"),
    ("age > 2 ** 64", 7, "arithmetic is not allowed"),
    ("age if vip else False", 1, "a conditional expression is not allowed"),
    ("(vip := True)", 2, "assignment (:=) is not allowed"),
    ("age > score", 7, "compare a field with a value, not with another field"),
    ("city == name", 9, "compare a field with a value, not with another field"),
    ("1 < 2", 1, "a comparison needs a field on one side"),
    ("age == 'x'", 8, "'age' holds number values; it cannot be compared with 'x'"),
    ("city == 5", 9, "'city' holds string values"),
    ("vip == 1", 8, "'vip' holds boolean values"),
    ("age == True", 8, "'age' holds number values"),
    ("joined > 'yesterday'", 10, "'joined' holds dates"),
    ("joined > '2026-02-30'", 10, "'joined' holds dates"),
    ("joined > '0001-01-01T00:00:00+01:00'", 10, "'joined' holds dates"),
    ("vip > False", 7, "'vip' is true or false: compare it with == or !="),
    ("age is 5", 8, "`is` only compares with None"),
    ("age is not 'x'", 12, "`is` only compares with None"),
    ("None is age", 1, "write `field is None`, with the field first"),
    ("age == None", 8, "compare with None using `is None`"),
    ("age in (1, 'x')", 12, "'age' holds number values"),
    ("age in (1, score)", 12, "a list in a segment holds only literal values"),
    ("city in 'Shanghai'", 1, "use `field in ('a', 'b')` or `'a' in list_field`"),
    ("age in products", 1, "use `field in ('a', 'b')` or `'a' in list_field`"),
    ("'x' in city", 8, "'city' is a string field, not a list"),
    ("5 in products", 1, "list attributes hold text"),
    ("products == 'loan'", 13, "'products' is a list"),
    ("products", 1, "'products' is a list"),
    ("age", 1, "'age' is a number field: compare it"),
    ("vip and city", 9, "'city' is a string field"),
    ("-'x' < city", 1, "only numbers can be negative"),
    ("5", 1, "a segment must be a condition, not a lone value"),
    ("'vip'", 1, "a segment must be a condition, not a lone value"),
    ("f'{age}' == '1'", 1, "JoinedStr is not allowed"),
    ("b'x' == city", 1, "is not allowed"),
    ("~vip", 1, "is not allowed"),
    ("status == 'active'", 1, "no customer has a field or attribute named 'status'"),
    ("vip and __builtins__", 9, "no customer has a field or attribute named '__builtins__'"),
    ("age >", 6, "segment does not parse"),
    ("age => 18", 5, "segment does not parse"),
    ("city = 'Shanghai'", 6, "segment does not parse"),
    ("age == 'x", 8, "segment does not parse"),
    ("(age > 5", 1, "segment does not parse"),
    ("age > 5)", 8, "segment does not parse"),
    ("age\x00 > 5", 4, "segment does not parse: it contains a NUL character"),
    # Columns count characters, not UTF-8 bytes, and include leading blanks.
    ("city == '上海' and a.b", 18, "attribute access (a.b) is not allowed"),
    ("city == '上海' and age == 'x'", 25, "'age' holds number values"),
    ("'上海上海' == == 1", 11, "segment does not parse"),
    ("   age == 'x'", 11, "'age' holds number values"),
    ("  age >", 8, "segment does not parse"),
    ("  age >> 1", 3, "arithmetic is not allowed"),
    ("  age => 5", 7, "segment does not parse"),
    ("city == '上海' or city == 'x", 25, "segment does not parse"),
    # In an expression of several lines, the column is within the offending line.
    ("(age > 5 and\n a.b)", 2, "attribute access (a.b) is not allowed"),
    ("\n  a.b", 3, "attribute access (a.b) is not allowed"),
]


@pytest.mark.parametrize(("text", "col", "message"), REFUSED)
def test_refused_segments_say_why_and_where(text: str, col: int, message: str) -> None:
    for attempt in (
        lambda: check_segment(text, CATALOG),
        lambda: compile_segment(text, CATALOG, "sqlite", TODAY),
        lambda: compile_segment(text, CATALOG, "postgresql", TODAY),
    ):
        with pytest.raises(SegmentError) as caught:
            attempt()
        assert message in caught.value.message
        assert caught.value.col == col, (caught.value.message, caught.value.col)


def test_deep_nesting_is_refused_not_crashing() -> None:
    for text in [
        "not " * 5000 + "vip",
        "not " * 150 + "vip",
        "not (" * 400 + "vip" + ")" * 400,
        "(vip and " * 120 + "vip" + ")" * 120,
    ]:
        with pytest.raises(SegmentError, match=r"nested too deeply|too many nested parentheses"):
            compile_segment(text, CATALOG, "sqlite", TODAY)
    for dialect in ("sqlite", "postgresql"):  # deep enough for anyone, and it compiles
        str(compile_segment("(age > 1 or " * 40 + "not " * 40 + "vip" + ")" * 40, CATALOG, dialect, TODAY))


def test_names_are_only_checked_once_attributes_are_known() -> None:
    check_segment("status == 'active' and 'x' in anything", None)  # form only: no catalog yet
    compile_segment("status == 'active'", {}, "sqlite", TODAY)  # an empty store: never matched
    with pytest.raises(SegmentError, match="'status'"):
        check_segment("status == 'active'", CATALOG)
    with pytest.raises(SegmentError, match="the functions a segment may call are"):
        check_segment("open('x') == 1", None)
