"""Composing one customer's message for one channel: render the step's templates, then add what the law
and the mailbox providers require of marketing (opt-out wording on SMS; an unsubscribe link and RFC 8058
one-click headers on email)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jinja2 import Template
from markupsafe import escape

from outreach.campaigns.content_locales import choose, same_language
from outreach.campaigns.rendering import compile_template, customer_context, render
from outreach.campaigns.template_filters import FORMAT_LOCALE
from outreach.campaigns.templates import ChannelTemplates
from outreach.channels.sms_encoding import sms_size
from outreach.core.settings import Settings
from outreach.customers.unsubscribe import make_token, unsubscribe_url

SMS_LIKE = ("sms", "whatsapp", "wechat")


class CampaignFacts(Protocol):
    """What composing reads of a campaign (a loaded Campaign, or the planned content's copy of it)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def purpose(self) -> str: ...


class StepFacts(Protocol):
    """What composing reads of a step."""

    @property
    def id(self) -> str: ...
    @property
    def channel(self) -> str: ...


@dataclass(frozen=True)
class Composed:
    channel: str
    body: str
    subject: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sms_segments: int | None = None


def by_locale(texts: Mapping[str, str], locale: str | None) -> str:
    """The text for a locale: exact tag, then its language, then "default"."""
    if locale:
        if locale in texts:
            return texts[locale]
        language = locale.split("-")[0].lower()
        if language in texts:
            return texts[language]
    return texts.get("default") or next(iter(texts.values()), "")


class StepComposer:
    """A step's templates (or one variant's of them) compiled once for a run; composes each customer's message.

    With `variant`, templates see its id as `step.variant`."""

    def __init__(
        self,
        campaign: CampaignFacts,
        step: StepFacts,
        templates: Mapping[str, ChannelTemplates],
        settings: Settings,
        signing_key: bytes,
        variant: str | None = None,
    ) -> None:
        self.campaign = campaign
        self.step = step
        self.settings = settings
        self.key = signing_key
        self.compiled: dict[str, dict[str, Template]] = {
            channel: {part: compile_template(source) for part, source in found.parts.items()}
            for channel, found in templates.items()
        }
        # channel -> language -> parts, for per-language content (see content_locales)
        self.translations: dict[str, dict[str, dict[str, Template]]] = {
            channel: {
                tag: {part: compile_template(source) for part, source in parts.items()}
                for tag, parts in found.translations.items()
            }
            for channel, found in templates.items()
            if found.translations
        }
        self.fallbacks = {channel: found.fallback for channel, found in templates.items() if found.fallback}
        self._campaign_vars = {"id": campaign.id, "name": campaign.name, "purpose": campaign.purpose}
        self._step_vars = {"id": step.id, "channel": step.channel}
        if variant is not None:
            self._step_vars["variant"] = variant

    def compose(self, channel: str, customer: Mapping[str, Any]) -> Composed:
        """Raises rendering.MissingData / RenderError when this customer's message cannot be made."""
        parts = self.compiled[channel]
        language: str | None = None
        if channel in self.translations:
            languages = self.translations[channel]
            language = choose(languages, customer.get("locale"), self.fallbacks[channel])
            parts = languages[language]
        marketing = self.campaign.purpose == "marketing"
        token = make_token(self.key, str(customer["id"]), channel, self.campaign.purpose)
        link = unsubscribe_url(self.settings.public_url, token)
        context = customer_context(customer)
        context.update(campaign=self._campaign_vars, step=self._step_vars, unsubscribe_url=link)
        if language is not None and not same_language(language, customer.get("locale")):
            # a customer given the fallback translation reads its dates and amounts in its language too
            context[FORMAT_LOCALE] = language
        locale = customer.get("locale")
        if channel != "email":
            body = render(parts["body"], context)
            if marketing and channel == "sms":
                body = _with_opt_out(body, by_locale(self.settings.sms_opt_out, locale))
            return Composed(channel, body, sms_segments=sms_size(body).segments if channel == "sms" else None)
        subject = " ".join(render(parts["subject"], context).split())
        text = render(parts["text"], context)
        html = render(parts["html"], context) if "html" in parts else None
        headers: dict[str, str] = {}
        if marketing:
            footer = by_locale(self.settings.email_unsubscribe, locale).format(url=link)
            if link not in text:
                text = f"{text}\n\n-- \n{footer}"
            if html is not None and link not in html:
                html = f'{html}\n<p style="font-size:12px;color:#666"><a href="{escape(link)}">{escape(footer)}</a></p>'
            headers["List-Unsubscribe"] = f"<{link}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return Composed(channel, text, subject=subject, html=html, headers=headers)


def _with_opt_out(body: str, wording: str) -> str:
    if not wording or wording in body:
        return body
    # Chinese punctuation needs no space after it; anything else gets one.
    separator = "" if body.endswith(("\u3002", "\uff01", "\uff1f", "\uff0c", " ")) else " "
    return f"{body}{separator}{wording}"
