"""The checks of a campaign file that need more than one field, the file system or the store: duplicate ids,
the segment against the attribute catalog, cron expressions, the channels each step may use and the
templates they need (inline or files), survey attributes. Every problem is a PATH:LINE:COL Problem.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap

from outreach.campaigns.content_locales import normalize
from outreach.campaigns.declared_attributes import untyped_names, with_declared
from outreach.campaigns.model import SCHEDULE_OR_TRIGGER, Campaign, Schedule, Step, Trigger, Variant
from outreach.campaigns.rendering import TemplateText, check_template
from outreach.campaigns.template_files import EMAIL_PARTS, OPTIONAL_PARTS, TemplateNameError, candidate_files
from outreach.campaigns.templates import ChannelTemplates, LocatedTemplateText
from outreach.campaigns.validation_messages import dotted
from outreach.core.errors import Problem
from outreach.core.settings import Settings
from outreach.core.yaml_source import Loc, YamlDocument
from outreach.segments.compiler import segment_errors
from outreach.store.fields import CORE_FIELDS, AttributeType

_CRON_FIELDS = (("minute", "minute"), ("hour", "hour"), ("day", "day of month"), ("month", "month"))
_CRON_WEEKDAY = ("day_of_week", "day of week")

_M = TypeVar("_M", bound=BaseModel)


def _valid(model: type[_M], value: Any) -> _M | None:
    """`value` as a `model`, or None when it is not one (its problems are reported elsewhere)."""
    if value is None:
        return None
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


class CampaignChecker:
    """The checks that need more than one field, the file system or the store."""

    def __init__(self, doc: YamlDocument, settings: Settings, catalog: dict[str, AttributeType] | None) -> None:
        self.doc = doc
        self.settings = settings
        # The store's attribute types; `catalog` adds those the campaign declares itself (survey answers).
        self.store_catalog = catalog if catalog else None
        self.catalog = self.store_catalog
        self.known_names = (set(CORE_FIELDS) | set(catalog)) if catalog else None
        self.problems: list[Problem] = []
        self.trigger: Trigger | None = None
        self.trigger_known = True
        self.variant_templates: dict[str, dict[str, dict[str, ChannelTemplates]]] = {}
        # the campaign's default_locale, normalised (None: each per-language block falls back to its first)
        self.campaign_default_locale: str | None = None

    def run(self, campaign: Campaign | None) -> dict[str, dict[str, ChannelTemplates]]:
        """Check `campaign`, or when it did not validate, whichever of its parts are valid on their own."""
        raw: CommentedMap = self.doc.data
        raw_steps = raw.get("steps")
        steps: list[tuple[int, Step]]
        if campaign is not None:
            segment, schedule, self.trigger = campaign.segment, campaign.schedule, campaign.trigger
            self.campaign_default_locale = campaign.default_locale
            steps = list(enumerate(campaign.steps))
        else:
            segment = raw.get("segment") if isinstance(raw.get("segment"), str) else None
            schedule = _valid(Schedule, raw.get("schedule"))
            self.trigger = _valid(Trigger, raw.get("trigger"))
            self.trigger_known = raw.get("trigger") is None or self.trigger is not None
            items = raw_steps if isinstance(raw_steps, list) else []
            steps = [(i, step) for i, item in enumerate(items) if (step := _valid(Step, item)) is not None]
            if raw.get("schedule") is not None and raw.get("trigger") is not None:
                self.problems.append(self.doc.problem((), SCHEDULE_OR_TRIGGER))
        if self.store_catalog is not None:
            untyped = untyped_names(self.store_catalog)
            self.catalog = with_declared(self.store_catalog, (step for _, step in steps), untyped)
            self.known_names = set(CORE_FIELDS) | set(self.catalog)
        if segment is not None:
            self._segment(segment, ("segment",))
        if schedule is not None and schedule.cron is not None:
            self._cron(schedule.cron, schedule.timezone)
        if isinstance(raw_steps, list):
            self._duplicate_ids(raw_steps, ("steps",), "step")
            for i, item in enumerate(raw_steps):
                if isinstance(item, dict) and isinstance(item.get("variants"), list):
                    self._duplicate_ids(item["variants"], ("steps", i, "variants"), "variant")
        templates: dict[str, dict[str, ChannelTemplates]] = {}
        for i, step in steps:
            loc: Loc = ("steps", i)
            if i == 0 and step.after is not None:
                self.problems.append(
                    self.doc.problem((*loc, "after"), "the first step cannot wait `after` a previous one")
                )
            if step.unless == "clicked":
                self.problems.append(
                    self.doc.problem(
                        (*loc, "unless"), "`unless: clicked` needs click tracking, which outreach does not do yet"
                    )
                )
            elif step.unless is not None and step.after is None:
                self.problems.append(
                    self.doc.problem((*loc, "unless"), "`unless` needs `after`: it looks at the step before this one")
                )
            if step.only_if is not None:
                self._segment(step.only_if, (*loc, "only_if"))
            if step.expects is not None:
                self._expects_attribute(step, loc)
            templates[step.id] = self._step_templates(step, loc)
        return templates

    def _expects_attribute(self, step: Step, loc: Loc) -> None:
        """The answer goes into a profile attribute: it must not clash with the type customers already have."""
        assert step.expects is not None
        name, kind = step.expects.attribute_name, step.expects.attribute_type
        known = (self.store_catalog or {}).get(name)
        if known is not None and known != kind and name not in untyped_names(self.store_catalog):
            where = (*loc, "expects", "attribute") if step.expects.attribute else (*loc, "expects")
            self.problems.append(
                self.doc.problem(where, f"the answers are a {kind} but the attribute {name!r} holds a {known}")
            )

    def _duplicate_ids(self, items: list[Any], loc: Loc, what: str) -> None:
        """Each `id` of the mappings in `items` (the steps, a step's variants) that an earlier one has."""
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            item_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(item_id, str):
                continue
            if item_id in first:
                line, _ = self.doc.locate((*loc, first[item_id], "id"))
                self.problems.append(
                    self.doc.problem((*loc, i, "id"), f"{what} id {item_id!r} is already used on line {line}")
                )
            else:
                first[item_id] = i

    def _segment(self, text: str, loc: Loc) -> None:
        for exc in segment_errors(text, self.catalog):
            # exc.col counts characters of the line the expression starts on (leading blanks included)
            blank_lines = text[: len(text) - len(text.lstrip())].count("\n")
            col = exc.col or 1
            if "\n" in text.strip():  # the column is on some line of a multi-line expression: point at its start
                first = text.split("\n")[blank_lines]
                col = len(first) - len(first.lstrip()) + 1
            line, column = self.doc.text_position(loc, blank_lines + 1, col)
            where = dotted(loc)
            message = exc.message if exc.message.startswith(where) else f"{where}: {exc.message}"
            self.problems.append(Problem(self.doc.path, line, column, message))

    def _cron(self, expression: str, timezone: str) -> None:
        from apscheduler.triggers.cron import CronTrigger

        loc: Loc = ("schedule", "cron")
        fields = list(re.finditer(r"\S+", expression))
        if len(fields) != 5:
            self.problems.append(
                self.doc.problem(
                    loc,
                    f"schedule.cron: {expression!r} has {len(fields)} fields; a cron expression has 5: "
                    "minute hour day-of-month month day-of-week, like '0 10 * * MON'",
                )
            )
            return
        bad_fields = 0
        for match, (name, label) in zip(fields, (*_CRON_FIELDS, _CRON_WEEKDAY), strict=True):
            try:
                CronTrigger(**{name: match.group()}, timezone=timezone)
            except ValueError as exc:
                bad_fields += 1
                reason = re.sub(r"^Error validating expression '[^']*': ", "", str(exc))
                line, col = self.doc.text_position(loc, 1, match.start() + 1)
                self.problems.append(
                    Problem(
                        self.doc.path, line, col, f"schedule.cron: {label} {match.group()!r} is not valid: {reason}"
                    )
                )
        if bad_fields:
            return
        try:
            CronTrigger.from_crontab(expression, timezone=timezone)
        except ValueError as exc:
            self.problems.append(self.doc.problem(loc, f"schedule.cron: {expression!r} is not valid: {exc}"))

    def _channels_needed(self, step: Step, loc: Loc) -> list[str] | None:
        """The channels a step may send on, or None when that cannot be known (an invalid trigger)."""
        channels: list[str] = []
        if step.channel == "reply":
            if self.trigger is not None:
                channels.extend(self.trigger.inbound.channels)
            elif self.trigger_known:
                self.problems.append(
                    self.doc.problem(
                        (*loc, "channel"), "`channel: reply` answers a customer: it needs `trigger: inbound`"
                    )
                )
            else:
                return None
        else:
            channels.append(step.channel)
        if step.fallback is not None and step.fallback not in channels:
            channels.append(step.fallback)
        return channels

    def _step_templates(self, step: Step, loc: Loc) -> dict[str, ChannelTemplates]:
        """The step's templates per channel; a step with variants has a set per variant, each checked alike."""
        channels = self._channels_needed(step, loc) or []
        if step.variants is None:
            return self._templates(step, step, loc, channels)
        arms = {v.id: self._templates(step, v, (*loc, "variants", j), channels) for j, v in enumerate(step.variants)}
        self.variant_templates[step.id] = arms
        return arms[step.variants[0].id]

    def _templates(
        self, step: Step, source: Step | Variant, loc: Loc, channels: list[str]
    ) -> dict[str, ChannelTemplates]:
        out: dict[str, ChannelTemplates] = {}
        for channel in channels:
            if source.content is not None:
                found = self._inline(step, source, channel, loc)
            else:
                assert source.template is not None
                found = self._files(source.template, channel, loc)
            if found is None:
                continue
            for text in found.every_part():
                self.problems.extend(check_template(text, self.known_names))
            out[channel] = found
        return out

    def _inline(self, step: Step, source: Step | Variant, channel: str, loc: Loc) -> ChannelTemplates | None:
        content = source.content
        assert content is not None
        value = getattr(content, channel)
        if value is None:
            variant = isinstance(source, Variant)
            who = f"step {step.id!r}" + (f" variant {source.id!r}" if variant else "")
            where: Loc = (*loc, "content")
            if channel == step.fallback:
                where, why = (where if variant else (*loc, "fallback")), f"falls back to {channel}"
            elif step.channel == "reply":
                why = f"replies on {channel} (one of the trigger's channels)"
            else:
                why = f"sends {channel}"
            self.problems.append(
                self.doc.problem(
                    where, f"{who} {why} but its content has no {channel} template", at_key=where[-1] == "content"
                )
            )
            return None
        base: Loc = (*loc, "content", channel)
        if not isinstance(value, dict):
            return ChannelTemplates(channel, self._inline_parts(channel, value, base))
        translations = {tag: self._inline_parts(channel, one, (*base, tag)) for tag, one in value.items()}
        default = self.campaign_default_locale
        if default is None:
            fallback = next(iter(value))
        else:
            matching = [tag for tag in value if normalize(tag) == default]
            if not matching:
                written = ", ".join(value)
                self.problems.append(
                    self.doc.problem(
                        base,
                        f"{channel} has no {default} text ({written} written): default_locale {default} is what "
                        "customers get whose language is not written",
                    )
                )
                return None
            fallback = matching[0]
        return ChannelTemplates(channel, translations[fallback], translations, fallback)

    def _inline_parts(self, channel: str, value: Any, base: Loc) -> dict[str, TemplateText]:
        if channel != "email":
            return {"body": self._inline_text(value, base)}
        parts = {}
        for part in EMAIL_PARTS:
            text = getattr(value, part)
            if text is not None:
                parts[part] = self._inline_text(text, (*base, part), html=part == "html")
        return parts

    def _inline_text(self, text: str, loc: Loc, html: bool = False) -> TemplateText:
        doc = self.doc

        def line_start(line: int) -> tuple[int, int | None]:
            return doc.text_position(loc, line, 1)

        def character(line: int, col: int) -> tuple[int, int | None]:
            return doc.text_position(loc, line, col)

        return LocatedTemplateText(str(text), doc.path, line_start, html=html, locate_column=character)

    def _files(self, name: str, channel: str, loc: Loc) -> ChannelTemplates | None:
        try:
            wanted = candidate_files(self.settings.templates_dir, name, channel)
        except TemplateNameError as exc:
            self.problems.append(self.doc.problem((*loc, "template"), str(exc)))
            return None
        parts: dict[str, TemplateText] = {}
        missing = []
        for part, candidates in wanted.items():
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                if part not in OPTIONAL_PARTS:
                    missing.append(str(candidates[0]) + "".join(f" (or {c})" for c in candidates[1:]))
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror
                self.problems.append(Problem(str(path), None, None, f"cannot read template file: {reason}"))
                continue
            parts[part] = LocatedTemplateText(
                text,
                str(path),
                lambda line: (line, None),
                html=part == "html",
                locate_column=lambda line, col: (line, col),
            )
        if missing:
            if len(missing) == 1:
                message = f"{channel} needs the template file {missing[0]}, which does not exist"
            else:
                message = f"{channel} needs template files that do not exist: {', '.join(missing)}"
            self.problems.append(self.doc.problem((*loc, "template"), message))
            return None
        return ChannelTemplates(channel, parts)
