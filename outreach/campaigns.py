"""Loading campaign files: YAML to a checked Campaign, with every problem reported as PATH:LINE:COL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from outreach.campaign_model import Campaign, Step
from outreach.config import Settings
from outreach.errors import InputError, Problem
from outreach.fields import CORE_FIELDS, AttributeType
from outreach.rendering import TemplateText, check_template
from outreach.segments import SegmentError, check_segment
from outreach.yamlsource import Loc, YamlDocument, load_yaml

EMAIL_PARTS = ("subject", "text", "html")
_FILE_SUFFIX = {"subject": "subject", "text": "txt", "html": "html"}


@dataclass(frozen=True)
class ChannelTemplates:
    """The templates one channel of a step renders: `body`, or an email's `subject`, `text`, `html`."""

    channel: str
    parts: dict[str, TemplateText]


@dataclass(frozen=True)
class LoadedCampaign:
    campaign: Campaign
    path: Path
    source: str
    # step id -> channel -> templates
    templates: dict[str, dict[str, ChannelTemplates]]

    @property
    def id(self) -> str:
        return self.campaign.id

    def first_steps(self) -> list[Step]:
        """Steps that go when the campaign runs (the rest follow with `after:`)."""
        return [s for s in self.campaign.steps if s.after is None]


def find_campaign_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def load_campaigns(
    paths: Sequence[Path], settings: Settings, catalog: dict[str, AttributeType] | None
) -> list[LoadedCampaign]:
    """Load every campaign file under `paths`; raise one InputError listing every problem in all of them."""
    loaded: list[LoadedCampaign] = []
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for path in find_campaign_files(paths):
        try:
            campaign = load_campaign(path, settings, catalog)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if campaign.id in seen:
            problems.append(
                Problem(str(path), None, None, f"campaign id {campaign.id!r} is also used by {seen[campaign.id]}")
            )
        seen[campaign.id] = path
        loaded.append(campaign)
    if problems:
        raise InputError(problems)
    return loaded


def load_campaign(path: Path, settings: Settings, catalog: dict[str, AttributeType] | None) -> LoadedCampaign:
    """Parse and check one campaign file. With a catalog of known attributes (customers have been
    imported), segment and template names are checked against it too."""
    doc = load_yaml(path)
    if not isinstance(doc.data, CommentedMap):
        raise InputError.single(doc.path, "a campaign file is a YAML mapping (id:, name:, steps: ...)", 1, 1)
    try:
        campaign = Campaign.model_validate(doc.data)
    except ValidationError as exc:
        raise InputError(_pydantic_problems(doc, exc)) from None
    checker = _Checker(doc, campaign, settings, catalog)
    templates = checker.run()
    if checker.problems:
        raise InputError(checker.problems)
    return LoadedCampaign(campaign, path, doc.text, templates)


def _pydantic_problems(doc: YamlDocument, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if isinstance(p, str | int)]
        where = _dotted(loc)
        if error["type"] == "extra_forbidden":
            problems.append(doc.problem(loc, f"unknown key {loc[-1]!r}", at_key=True))
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            problems.append(doc.problem(loc[:-1], f"missing required key {loc[-1]!r}"))
            continue
        if error["type"] == "string_pattern_mismatch":
            message = _pattern_message(str(loc[-1]) if loc else "", error.get("input"))
        problems.append(doc.problem(loc, f"{where}: {message}" if where else message))
    return problems


def _pattern_message(field: str, value: Any) -> str:
    hints = {
        "id": "ids are lowercase letters, digits and -, starting with a letter or digit",
        "tag": "tags are lowercase letters, digits and -",
        "template": "template names are folders and names of letters, digits, _ and -, like nps/reminder",
        "throttle": "write a rate like 50/s, 300/m or 1000/h",
        "start": "write a time as HH:MM",
        "end": "write a time as HH:MM",
    }
    return f"{value!r} is not valid: {hints.get(field, 'wrong format')}"


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Checker:
    """The checks that need more than one field, the file system or the store."""

    def __init__(
        self,
        doc: YamlDocument,
        campaign: Campaign,
        settings: Settings,
        catalog: dict[str, AttributeType] | None,
    ) -> None:
        self.doc = doc
        self.campaign = campaign
        self.settings = settings
        self.catalog = catalog if catalog else None
        self.known_names = (set(CORE_FIELDS) | set(catalog)) if catalog else None
        self.problems: list[Problem] = []

    def run(self) -> dict[str, dict[str, ChannelTemplates]]:
        c = self.campaign
        if c.segment is not None:
            self._segment(c.segment, ("segment",))
        if c.schedule is not None and c.schedule.cron is not None:
            self._cron(c.schedule.cron, c.schedule.timezone)
        templates: dict[str, dict[str, ChannelTemplates]] = {}
        seen_ids: set[str] = set()
        for i, step in enumerate(c.steps):
            loc: Loc = ("steps", i)
            if step.id in seen_ids:
                self.problems.append(self.doc.problem((*loc, "id"), f"step id {step.id!r} is used twice"))
            seen_ids.add(step.id)
            if i == 0 and step.after is not None:
                self.problems.append(
                    self.doc.problem((*loc, "after"), "the first step cannot wait `after` a previous one")
                )
            if step.only_if is not None:
                self._segment(step.only_if, (*loc, "only_if"))
            templates[step.id] = self._step_templates(step, loc)
        return templates

    def _segment(self, text: str, loc: Loc) -> None:
        try:
            check_segment(text, self.catalog)
        except SegmentError as exc:
            line, col = self.doc.text_position(loc, 1, exc.col)
            self.problems.append(Problem(self.doc.path, line, col, exc.message))

    def _cron(self, expression: str, timezone: str) -> None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(expression, timezone=timezone)
        except ValueError as exc:
            self.problems.append(self.doc.problem(("schedule", "cron"), f"cron {expression!r}: {exc}"))

    def _channels_needed(self, step: Step, loc: Loc) -> list[str]:
        channels: list[str] = []
        if step.channel == "reply":
            trigger = self.campaign.trigger
            if trigger is None:
                self.problems.append(
                    self.doc.problem(
                        (*loc, "channel"), "`channel: reply` answers a customer: it needs `trigger: inbound`"
                    )
                )
            else:
                channels.extend(trigger.inbound.channels)
        else:
            channels.append(step.channel)
        if step.fallback is not None:
            channels.append(step.fallback)
        return channels

    def _step_templates(self, step: Step, loc: Loc) -> dict[str, ChannelTemplates]:
        out: dict[str, ChannelTemplates] = {}
        for channel in self._channels_needed(step, loc):
            if step.content is not None:
                found = self._inline(step, channel, loc)
            else:
                assert step.template is not None
                found = self._files(step.template, channel, loc)
            if found is None:
                continue
            for source in found.parts.values():
                self.problems.extend(check_template(source, self.known_names))
            out[channel] = found
        return out

    def _inline(self, step: Step, channel: str, loc: Loc) -> ChannelTemplates | None:
        content = step.content
        assert content is not None
        value = getattr(content, channel)
        role = "fallback" if channel == step.fallback else "channel"
        if value is None:
            self.problems.append(
                self.doc.problem(
                    (*loc, "fallback" if role == "fallback" else "content"),
                    f"step {step.id!r} may send {channel} but its content has no {channel} template",
                )
            )
            return None
        base: Loc = (*loc, "content", channel)
        if channel != "email":
            return ChannelTemplates(channel, {"body": self._inline_text(value, base)})
        parts = {}
        for part in EMAIL_PARTS:
            text = getattr(value, part)
            if text is not None:
                parts[part] = self._inline_text(text, (*base, part), html=part == "html")
        return ChannelTemplates(channel, parts)

    def _inline_text(self, text: str, loc: Loc, html: bool = False) -> TemplateText:
        doc = self.doc
        return TemplateText(str(text), doc.path, lambda line: doc.text_position(loc, line), html=html)

    def _files(self, name: str, channel: str, loc: Loc) -> ChannelTemplates | None:
        root = self.settings.templates_dir
        wanted: dict[str, tuple[Path, ...]]
        if channel == "email":
            wanted = {part: (root / f"{name}.{_FILE_SUFFIX[part]}.j2",) for part in EMAIL_PARTS}
        elif channel == "sms":
            wanted = {"body": (root / f"{name}.sms.j2",)}
        else:
            wanted = {"body": (root / f"{name}.{channel}.j2", root / f"{name}.sms.j2")}
        parts: dict[str, TemplateText] = {}
        missing = []
        for part, candidates in wanted.items():
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                if part != "html":
                    missing.append(str(candidates[0]))
                continue
            text = path.read_text(encoding="utf-8")
            parts[part] = TemplateText(text, str(path), lambda line: (line, None), html=part == "html")
        if missing:
            self.problems.append(
                self.doc.problem((*loc, "template"), f"{channel} needs template file(s) {', '.join(missing)}")
            )
            return None
        return ChannelTemplates(channel, parts)
