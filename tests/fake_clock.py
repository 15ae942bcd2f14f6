"""A clock that moves only when a test moves it, and exact comparison of the moments read from it."""

from __future__ import annotations

from typing import Any

import pytest


def exactly(value: float | list[float]) -> Any:
    """`value` up to float rounding (pytest.approx's default 1e-6 is a millisecond at 1000 s)."""
    return pytest.approx(value, rel=0, abs=1e-9)


class FakeClock:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
