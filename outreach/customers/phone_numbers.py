"""Phone numbers already written in E.164 (`+8613800138000`), checked exactly as `phonenumbers` checks them
(`parse` then `is_valid_number`), without its general parser.

An import checks millions of numbers, nearly all written `+CC...`. For that shape `parse` only splits off
the country code (codes are prefix-free: the first of 1, 2 or 3 digits that is one), strips a national prefix
when the region's rule matches the rest, and builds the number; `is_valid_number` then checks the national
number against the region's general description and its number types. `valid_e164` does the same with the
region's patterns compiled once, for the numbers where no stripping happens, no leading zero needs keeping
and the country code belongs to one region, and answers "valid, this is its E.164 form"; for everything
else (national numbers, spaces, a leading zero, a prefix rule that matches, a code shared by several
regions, an invalid number) it answers None and the caller asks `phonenumbers` itself, so errors keep its
verdicts.
tests/customers/test_phone_numbers.py compares the two on every region's example numbers and variants.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers import region_code_for_country_code as _region_of

_E164 = re.compile(r"\+([1-9][0-9]{2,17})")
_LONGEST_COUNTRY_CODE = 3
_NSN_LENGTHS = range(2, 18)  # phonenumbers' _MIN_LENGTH_FOR_NSN and _MAX_LENGTH_FOR_NSN


def valid_e164(raw: str) -> str | None:
    """`raw` when it is a valid number written in E.164; None when `phonenumbers.parse` must decide."""
    match = _E164.fullmatch(raw)
    if match is None:
        return None
    digits = match.group(1)
    for size in range(1, _LONGEST_COUNTRY_CODE + 1):
        code = int(digits[:size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if len(national) not in _NSN_LENGTHS or national[0] == "0":
        return None
    rules = _rules(code)
    if rules is None or rules.national_prefix.match(national):
        return None
    return raw if rules.is_valid(national) else None


_NO_RULE = re.compile(r"(?!)")  # matches nothing: the region strips no national prefix
# The number types `phonenumbers._number_type_helper` tries after the general description: a number is
# valid when it fits the general description and one of them.
_TYPES = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
    "fixed_line", "mobile",
)  # fmt: skip


class _Desc(NamedTuple):
    lengths: frozenset[int]  # empty: any length
    pattern: re.Pattern[str]

    def fits(self, national: str) -> bool:
        return (not self.lengths or len(national) in self.lengths) and self.pattern.fullmatch(national) is not None


class _Rules(NamedTuple):
    """What `parse` and `is_valid_number` apply to the numbers of one country code."""

    national_prefix: re.Pattern[str]
    general: _Desc
    types: tuple[_Desc, ...]

    def is_valid(self, national: str) -> bool:
        return self.general.fits(national) and any(d.fits(national) for d in self.types)


def _desc(desc: Any) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return _Desc(frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern))


@functools.cache
def _rules(code: int) -> _Rules | None:
    """The rules of country code `code`, or None when the caller must ask `phonenumbers` (a code shared by
    several regions, whose region `is_valid_number` works out number by number; no metadata)."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(regions) != 1:
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, _region_of(code))
    if metadata is None:
        return None
    general = _desc(metadata.general_desc)
    if general is None:
        return None
    types = tuple(d for d in (_desc(getattr(metadata, name)) for name in _TYPES) if d is not None)
    rule = metadata.national_prefix_for_parsing
    return _Rules(re.compile(rule) if rule else _NO_RULE, general, types)
