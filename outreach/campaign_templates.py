"""The templates a loaded campaign's steps render, per channel, each able to say where it sits in its file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from outreach.rendering import TemplateText


@dataclass(frozen=True)
class ChannelTemplates:
    """The templates one channel of a step renders: `body`, or an email's `subject`, `text`, `html`."""

    channel: str
    parts: dict[str, TemplateText]


@dataclass(frozen=True)
class LocatedTemplateText(TemplateText):
    """A template that can also place any character of itself in its file: `locate_column(line, col)`
    (1-based, inside the template) gives the file's line and column. check_template uses it when present."""

    locate_column: Callable[[int, int], tuple[int, int | None]] | None = None
