"""Nothing of a segment runs in Python: hostile expressions are refused without being evaluated, and compiling
harmless ones executes, imports and opens nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from outreach.segments.compiler import check_segment, compile_segment
from outreach.segments.syntax import SegmentError
from tests.segment_reference import CATALOG, TODAY


def test_nothing_of_a_segment_is_evaluated_in_python(tmp_path: Path) -> None:
    """No code object of the expression runs: audit events show no exec, import, open or os call, and
    expressions that would act if evaluated leave no trace."""
    marker = tmp_path / "evaluated"
    hostile = [
        f"__import__('os').system('touch {marker}') == 0",
        f"open({str(marker)!r}, 'w') is None",
        f"vip or __import__('pathlib').Path({str(marker)!r}).touch()",
        "age > 5 and exec('import os')",
        "[x for x in ().__class__.__base__.__subclasses__()]",
        "city == (lambda: __import__('os'))()",
    ]
    harmless = [
        "vip and __name__ is None",  # names are fields: __name__ is looked up in the catalog, not Python's scope
        "18 <= age < 65 and city in ('上海', 'Beijing') and 'loan' in products and last_login < days_ago(30)",
    ]
    for text in harmless:  # warm up: anything SQLAlchemy imports lazily is imported now
        for dialect in ("sqlite", "postgresql"):
            str(compile_segment(text.replace("__name__", "email"), CATALOG, dialect, TODAY))
    events: list[str] = []
    recording = [True]

    def hook(event: str, _args: tuple[Any, ...]) -> None:
        if recording[0] and (event in ("exec", "import", "open") or event.startswith(("os.", "subprocess."))):
            events.append(event)

    sys.addaudithook(hook)
    try:
        for text in hostile:
            for catalog in (CATALOG, {}):
                with pytest.raises(SegmentError):
                    compile_segment(text, catalog, "sqlite", TODAY)
            with pytest.raises(SegmentError):
                check_segment(text, None)
        with pytest.raises(SegmentError, match="'__name__'"):
            check_segment(harmless[0], CATALOG)
        for dialect in ("sqlite", "postgresql"):
            str(compile_segment(harmless[0], {}, dialect, TODAY))
            str(compile_segment(harmless[1], CATALOG, dialect, TODAY))
        assert events == []
        exec("pass")  # the control: evaluating something in Python is seen
        assert events == ["exec"]
    finally:
        recording[0] = False  # an audit hook cannot be removed; it stops recording
    assert not marker.exists()
