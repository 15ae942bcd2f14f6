"""The templates a loaded campaign's steps render, per channel, each able to say where it sits in its file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from outreach.campaigns.rendering import TemplateText


@dataclass(frozen=True)
class ChannelTemplates:
    """The templates one channel of a step renders: `body`, or an email's `subject`, `text`, `html`."""

    channel: str
    # the message, or with translations the fallback language's
    parts: dict[str, TemplateText]
    # per-language content: language tag as written -> its parts (the fallback's among them)
    translations: dict[str, dict[str, TemplateText]] = field(default_factory=dict)
    fallback: str | None = None

    def every_part(self) -> list[TemplateText]:
        """Every template of the channel, each translation's included."""
        if not self.translations:
            return list(self.parts.values())
        return [text for parts in self.translations.values() for text in parts.values()]


@dataclass(frozen=True)
class LocatedTemplateText(TemplateText):
    """A template that can also place any character of itself in its file: `locate_column(line, col)`
    (1-based, inside the template) gives the file's line and column. check_template uses it when present."""

    locate_column: Callable[[int, int], tuple[int, int | None]] | None = None
