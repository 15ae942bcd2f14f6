"""The project's error tree.

OutreachError
├── InputError          bad input from a user's file or command line: exit status 2, nothing written
└── ProviderError       raised inside a provider and mapped to a send result at its boundary
    ├── TransientError  worth retrying later (SMTP 4xx, HTTP 429/5xx, timeouts, refused connections)
    └── PermanentError  retrying cannot help (SMTP 5xx, invalid number, recipient opted out)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input, located as precisely as the input allows."""

    path: str
    line: int | None
    col: int | None
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.message}"


class OutreachError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(OutreachError):
    """Input that cannot be accepted; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line or 0, p.col or 0, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, path: str, message: str, line: int | None = None, col: int | None = None) -> InputError:
        return cls([Problem(path, line, col, message)])


class ProviderError(OutreachError):
    """A provider could not deliver a message; `code` is the provider's own error code when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientError(ProviderError):
    """Worth retrying after a delay."""


class PermanentError(ProviderError):
    """Retrying the same message cannot succeed."""
