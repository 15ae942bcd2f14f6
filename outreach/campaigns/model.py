"""The campaign file format as pydantic models (see docs/reference.md, "Campaign files")."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

from outreach.campaigns.content_locales import check_locale, looks_like_locale
from outreach.campaigns.template_files import TEMPLATE_NAME_PATTERN
from outreach.channels.base import Channel
from outreach.core.durations import parse_duration
from outreach.store.fields import CORE_FIELDS

Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
_VARIANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")  # the ledger's `variant` column holds 32 characters
StepChannel = Literal[Channel, "reply"]
TemplateName = Annotated[str, Field(pattern=TEMPLATE_NAME_PATTERN)]
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


SCHEDULE_OR_TRIGGER = "a campaign runs on a `schedule` or on a `trigger`, not both"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (like Asia/Shanghai)") from None
    return value


class EmailContent(_Model):
    subject: str
    text: str
    html: str | None = None


EMAIL_KEYS = frozenset(EmailContent.model_fields)
LocaleTag = Annotated[str, AfterValidator(check_locale)]


def _email_shape(value: object) -> str:
    """One email (`subject`, `text`...) or one per language (`zh`, `en`...)."""
    if isinstance(value, dict) and value and not EMAIL_KEYS & set(value) and all(map(looks_like_locale, value)):
        return "ByLocale"
    return "Single"


def _text_shape(value: object) -> str:
    return "ByLocale" if isinstance(value, dict) else "Single"


# Tags are upper case: the loader leaves union members' names out of the file positions it reports.
TextContent = Annotated[
    Annotated[str, Tag("Single")] | Annotated[dict[LocaleTag, str], Tag("ByLocale")], Discriminator(_text_shape)
]
MailContent = Annotated[
    Annotated[EmailContent, Tag("Single")] | Annotated[dict[LocaleTag, EmailContent], Tag("ByLocale")],
    Discriminator(_email_shape),
]


class Content(_Model):
    """A step's (or variant's) inline templates per channel: one message, or one per language (see
    outreach.campaigns.content_locales)."""

    sms: TextContent | None = None
    email: MailContent | None = None
    whatsapp: TextContent | None = None
    wechat: TextContent | None = None


AttributeName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
SURVEY_SCALES = {"nps": (0, 10), "csat": (1, 5)}


class Expects(_Model):
    """What a step asks the customer, so that a reply can be read as an answer and kept on the profile.

    `survey: nps` (0-10) or `csat` (1-5) stores a number; `keywords: {"1": interested}` stores the meaning of
    the keyword replied. The value goes to the profile attribute `attribute` (default `nps_score` /
    `csat_score`; required for keywords). Only replies within `within` of the message count (default: the
    `survey_window` setting).
    """

    survey: Literal["nps", "csat"] | None = None
    keywords: dict[str, Annotated[str, Field(min_length=1, max_length=64)]] | None = None
    attribute: AttributeName | None = None
    within: str | None = None

    _check_within = field_validator("within")(_duration)

    @model_validator(mode="after")
    def _one_question(self) -> Expects:
        if (self.survey is None) == (self.keywords is None):
            raise ValueError("`expects` takes exactly one of `survey` (nps | csat) or `keywords`")
        if self.keywords is not None:
            if not self.keywords:
                raise ValueError("`keywords` needs at least one answer")
            if self.attribute is None:
                raise ValueError("`expects` with `keywords` needs `attribute`: the profile attribute to store into")
        if self.attribute in CORE_FIELDS:
            raise ValueError(f"`attribute` cannot be the core field {self.attribute!r}")
        return self

    @property
    def attribute_name(self) -> str:
        return self.attribute or f"{self.survey}_score"

    @property
    def attribute_type(self) -> str:
        return "number" if self.survey else "string"


class Variant(_Model):
    """One arm of an A/B test in a step: its own content, sent to a share of the customers set by `weight`
    (its weight over the sum of the step's weights). Which customer gets which arm: outreach.planning.variants."""

    id: str
    weight: float = 1.0
    content: Content | None = None
    template: TemplateName | None = None

    @field_validator("id")
    @classmethod
    def _variant_id(cls, value: str) -> str:
        if not _VARIANT_ID.match(value):
            raise ValueError(
                f"{value!r} is not valid: variant ids are lowercase letters, digits and -, starting with a letter "
                "or digit (at most 32)"
            )
        return value

    @field_validator("weight", mode="before")
    @classmethod
    def _positive(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            shown = repr(value) if isinstance(value, str) else str(value).lower()
            raise ValueError(f"should be a positive number (the variant's share, like 70), not {shown}")
        return value

    @model_validator(mode="after")
    def _content_or_template(self) -> Variant:
        if self.content is not None and self.template is not None:
            raise ValueError("a variant has either `content` (inline templates) or `template` (files), not both")
        if self.content is None and self.template is None:
            raise ValueError("a variant needs `content` (inline templates) or `template` (files)")
        return self


VARIANTS_OR_CONTENT = "a step has `variants` (each with its own content) or `content`/`template`, not both"


class Step(_Model):
    id: Identifier
    channel: StepChannel
    fallback: Channel | None = None
    content: Content | None = None
    template: TemplateName | None = None
    variants: list[Variant] | None = None
    after: str | None = None
    unless: Literal["replied", "delivered", "opted_out", "clicked"] | None = None
    only_if: str | None = None
    expects: Expects | None = None

    _check_after = field_validator("after")(_duration)

    @field_validator("variants")
    @classmethod
    def _two_or_more(cls, value: list[Variant] | None) -> list[Variant] | None:
        if value is not None and len(value) < 2:
            raise ValueError("an A/B test needs at least two variants (one message is `content` or `template`)")
        return value

    @model_validator(mode="after")
    def _content_or_template(self) -> Step:
        if self.variants is not None:
            if self.content is not None or self.template is not None:
                raise ValueError(VARIANTS_OR_CONTENT)
        elif self.content is not None and self.template is not None:
            raise ValueError("a step has either `content` (inline templates) or `template` (files), not both")
        elif self.content is None and self.template is None:
            raise ValueError("a step needs `content` (inline templates) or `template` (files)")
        if self.fallback is not None and self.fallback == self.channel:
            raise ValueError("`fallback` must be a different channel from `channel`")
        return self

    @property
    def delay(self) -> timedelta | None:
        return parse_duration(self.after) if self.after else None


class Schedule(_Model):
    cron: str | None = None
    at: datetime | None = None
    every: str | None = None
    timezone: str = "UTC"

    _check_tz = field_validator("timezone")(_timezone)
    _check_every = field_validator("every")(_duration)

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        given = [k for k in ("cron", "at", "every") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a schedule has exactly one of `cron`, `at` or `every`")
        return self


class QuietHours(_Model):
    start: ClockTime
    end: ClockTime


class FrequencyCap(_Model):
    max: Annotated[int, Field(gt=0)]
    per: str

    _check_per = field_validator("per")(_duration)


class InboundTrigger(_Model):
    channels: Annotated[list[Channel], Field(min_length=1)]
    match: str

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            regex.compile(value)  # the engine inbound triggers match with
        except regex.error as exc:
            reason, pos = getattr(exc, "msg", str(exc)), getattr(exc, "pos", None)
            try:  # `re` tells where the trouble starts (an unclosed group's opening), not where it was noticed
                re.compile(value)
            except re.error as plain:
                reason, pos = plain.msg, plain.pos
            # `pos` lets the loader point at the character inside the expression
            raise PydanticCustomError(
                "regex", "not a regular expression: {reason}", {"reason": reason, "pos": pos}
            ) from None
        return value


class Trigger(_Model):
    inbound: InboundTrigger


class Campaign(_Model):
    id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    purpose: Literal["service", "marketing"]
    description: str | None = None
    segment: str | None = None
    schedule: Schedule | None = None
    trigger: Trigger | None = None
    # `off`: a service campaign that must go at any hour (an OTP, a fraud alert) ignores configured quiet hours.
    quiet_hours: QuietHours | Literal["off"] | None = None
    frequency_cap: FrequencyCap | None = None
    throttle: Annotated[str, Field(pattern=r"^\d+(\.\d+)?/(s|m|h)$")] | None = None
    on_unknown: Literal["hold", "resend"] | None = None
    # Whether to send to an address another customer also has; default by purpose (settings
    # shared_address_service = suppress, shared_address_marketing = send).
    shared_address: Literal["suppress", "send"] | None = None
    # The language of per-language content for customers whose locale has no translation.
    default_locale: LocaleTag | None = None
    tag: Identifier | None = None
    steps: Annotated[list[Step], Field(min_length=1)]

    @model_validator(mode="after")
    def _schedule_or_trigger(self) -> Campaign:
        if self.schedule is not None and self.trigger is not None:
            raise ValueError(SCHEDULE_OR_TRIGGER)
        if self.quiet_hours == "off" and self.purpose == "marketing":
            raise ValueError("marketing always keeps quiet hours: `quiet_hours: off` is for service campaigns")
        return self

    @property
    def is_survey(self) -> bool:
        """A campaign that asks something (a step `expects:` an answer): it keeps quiet hours like marketing."""
        return any(step.expects is not None for step in self.steps)

    @property
    def unknown_policy(self) -> str:
        """What to do with a message whose outcome is unknown: hold (wait for an operator) unless told to resend."""
        return self.on_unknown or "hold"
