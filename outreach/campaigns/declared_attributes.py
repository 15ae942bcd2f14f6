"""The profile attributes a campaign declares (where its survey answers go, `expects:`), known to its
segments and `only_if` conditions before any customer has answered: `only_if: "nps_score is None"` works on
a fresh store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

from outreach.campaigns.model import Step
from outreach.store.fields import AttributeType


def declared_attributes(steps: Iterable[Step]) -> dict[str, AttributeType]:
    """Each attribute a step's answers go to, with the type the answers have (a score is a number)."""
    return {
        s.expects.attribute_name: cast(AttributeType, s.expects.attribute_type) for s in steps if s.expects is not None
    }


def with_declared(
    catalog: Mapping[str, AttributeType], steps: Iterable[Step], untyped: Iterable[str] = ()
) -> dict[str, AttributeType]:
    """The store's attribute types with the steps' declared ones added. A type the store has settled wins
    (the checks report a clash); one it only holds for an attribute no value has typed yet (`untyped`: a
    column imported empty) gives way to the declaration."""
    out = dict(catalog)
    open_names = set(untyped)
    for name, kind in declared_attributes(steps).items():
        if name not in out or name in open_names:
            out[name] = kind
    return out


def untyped_names(catalog: Mapping[str, AttributeType] | None) -> frozenset[str]:
    """The attributes of a catalog that no value has typed yet (see `customers.profiles.attribute_catalog`)."""
    return frozenset(getattr(catalog, "untyped", ()))
