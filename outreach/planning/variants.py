"""A/B variants of a step: which variant a customer gets, and the composer of each variant's content.

A customer's variant is a stable hash, not a random draw: sha256 of `campaign_id:customer_id`, its first 8
bytes read as a number in [0, 1), falls into one of the slices that the variants' weights cut [0, 1) into, in
the order the file lists them (weights 70 and 30: [0, 0.7) is the first, [0.7, 1) the second). So re-planning
an occurrence, every later occurrence and every step of the campaign give a customer the same variant, and
other campaigns split the same customers independently. Changing the weights, or adding, removing or
reordering variants, moves the edges of the slices: the customers between an old edge and its new place
switch variant (from 70/30 to 50/50, a fifth of the customers go from the first variant to the second).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step, Variant
from outreach.planning.messages import StepComposer

_SCALE = 2.0**64


def hash_point(campaign_id: str, customer_id: str) -> float:
    """Where a customer falls in [0, 1) for a campaign: the same every time, independent across campaigns."""
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


class VariantChooser:
    """Picks a customer's variant among weighted variants by hash_point."""

    def __init__(self, campaign_id: str, variants: Sequence[Variant]) -> None:
        if not variants:
            raise ValueError("no variants to choose from")
        self.campaign_id = campaign_id
        self.ids = [v.id for v in variants]
        total = sum(v.weight for v in variants)
        self.edges = [w / total for w in accumulate(v.weight for v in variants)][:-1]

    def choose(self, customer_id: str) -> str:
        # bisect_right: a point exactly on an edge belongs to the slice that starts there
        return self.ids[bisect_right(self.edges, hash_point(self.campaign_id, str(customer_id)))]


class StepVariants:
    """What the planner needs of a step's variants for one run: each customer's variant and its composer.

    A step without variants has no variant (None) and keeps the composer it was given."""

    def __init__(self, loaded: LoadedCampaign, step: Step, composer: StepComposer) -> None:
        self.default = composer
        self.chooser = VariantChooser(loaded.id, step.variants) if step.variants else None
        self.composers = {
            variant_id: StepComposer(
                loaded.campaign, step, templates, composer.settings, composer.key, variant=variant_id
            )
            for variant_id, templates in loaded.variant_templates.get(step.id, {}).items()
        }

    def choose(self, customer_id: str) -> str | None:
        """The customer's variant, or None when the step has none."""
        return self.chooser.choose(customer_id) if self.chooser else None

    def composer(self, variant: str | None) -> StepComposer:
        return self.default if variant is None else self.composers[variant]
