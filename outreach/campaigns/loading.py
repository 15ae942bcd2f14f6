"""Loading campaign files: YAML to a checked Campaign, with every problem reported as PATH:LINE:COL.

A file is checked as far as its structure allows: when some fields are wrong, the parts that are fine on
their own (the segment, the schedule, each step with its templates) are still checked, so one run of
`campaigns validate` lists everything there is to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from outreach.campaigns.checks import CampaignChecker
from outreach.campaigns.model import Campaign, Step
from outreach.campaigns.templates import ChannelTemplates
from outreach.campaigns.validation_messages import pydantic_problems
from outreach.core.errors import InputError, Problem
from outreach.core.settings import Settings
from outreach.core.yaml_source import load_yaml, parse_yaml
from outreach.store.fields import AttributeType


@dataclass(frozen=True)
class LoadedCampaign:
    campaign: Campaign
    path: Path
    source: str
    # step id -> channel -> templates (a step with variants: its first variant's, the control)
    templates: dict[str, dict[str, ChannelTemplates]]
    # step id -> variant id -> channel -> templates, for the steps with `variants`
    variant_templates: dict[str, dict[str, dict[str, ChannelTemplates]]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.campaign.id

    def first_steps(self) -> list[Step]:
        """Steps that go when the campaign runs (the rest follow with `after:`)."""
        return [s for s in self.campaign.steps if s.after is None]


def find_campaign_files(paths: Iterable[Path], refused: list[Problem] | None = None) -> list[Path]:
    """The files named and the *.yaml / *.yml files under the folders named, each once.

    A file under a folder that is a symbolic link to somewhere outside it is left out (and put in `refused`):
    what is in the campaigns folder is its owner's choice, not any file on the machine a link points at.
    """
    files: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        folder = path.resolve() if path.is_dir() else None
        found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) if folder else [path]
        for file in found:
            key = file.resolve()
            if folder is not None and not key.is_relative_to(folder):
                if refused is not None:
                    refused.append(Problem(str(file), None, None, f"a symbolic link out of {path}: not read"))
                continue
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files


def load_campaigns(
    paths: Sequence[Path], settings: Settings, catalog: dict[str, AttributeType] | None
) -> list[LoadedCampaign]:
    """Load every campaign file under `paths`; raise one InputError listing every problem in all of them."""
    loaded: list[LoadedCampaign] = []
    problems: list[Problem] = []
    seen: dict[str, LoadedCampaign] = {}
    for path in find_campaign_files(paths, problems):
        try:
            campaign = load_campaign(path, settings, catalog)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        first = seen.get(campaign.id)
        if first is not None:
            first_line, _ = _id_position(first)
            line, col = _id_position(campaign)
            problems.append(
                Problem(str(path), line, col, f"campaign id {campaign.id!r} is also used by {first.path}:{first_line}")
            )
        else:
            seen[campaign.id] = campaign
        loaded.append(campaign)
    if problems:
        raise InputError(problems)
    return loaded


def _id_position(loaded: LoadedCampaign) -> tuple[int, int]:
    return parse_yaml(str(loaded.path), loaded.source).locate(("id",))


def load_campaign(path: Path, settings: Settings, catalog: dict[str, AttributeType] | None) -> LoadedCampaign:
    """Parse and check one campaign file. With a catalog of known attributes (customers have been
    imported), segment and template names are checked against it too."""
    doc = load_yaml(path)
    if not isinstance(doc.data, CommentedMap):
        line, col = doc.locate(())
        raise InputError.single(doc.path, "a campaign file is a YAML mapping (id:, name:, steps: ...)", line, col)
    problems: list[Problem] = []
    campaign: Campaign | None
    try:
        campaign = Campaign.model_validate(doc.data)
    except ValidationError as exc:
        campaign = None
        problems.extend(pydantic_problems(doc, exc))
    checker = CampaignChecker(doc, settings, catalog)
    templates = checker.run(campaign)
    problems.extend(checker.problems)
    if problems or campaign is None:
        raise InputError(dict.fromkeys(problems))  # a problem found both ways is reported once
    return LoadedCampaign(campaign, path, doc.text, templates, checker.variant_templates)
