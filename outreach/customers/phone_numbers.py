"""Phone numbers already written in E.164 (`+8613800138000`), checked exactly as `phonenumbers` checks them
(`parse` then `is_valid_number`), without its general parser.

An import checks millions of numbers, nearly all written `+CC...`. For that shape `parse` only splits off
the country code (codes are prefix-free: the first of 1, 2 or 3 digits that is one), strips a national prefix
when the region's rule matches the rest, and builds the number. `valid_e164` does the same for the numbers
where no stripping happens and no leading zero needs keeping, and answers "valid, this is its E.164 form";
for everything else (national numbers, spaces, a leading zero, a prefix rule that matches, an invalid
number) it answers None and the caller asks `phonenumbers` itself, so errors keep its verdicts.
tests/customers/test_phone_numbers.py compares the two on every region's example numbers and variants.
"""

from __future__ import annotations

import functools
import re

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumber, is_valid_number
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
    prefix = _national_prefix_rule(code)
    if prefix is None or prefix.match(national):
        return None
    if not is_valid_number(PhoneNumber(country_code=code, national_number=int(national))):
        return None
    return raw


_NO_RULE = re.compile(r"(?!)")  # matches nothing: the region strips no national prefix


@functools.cache
def _national_prefix_rule(code: int) -> re.Pattern[str] | None:
    """The national-prefix rule `parse` applies to numbers of country code `code` (a pattern that never
    matches when there is none), or None when there is no metadata."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, _region_of(code))
    if metadata is None:
        return None
    rule = metadata.national_prefix_for_parsing
    return re.compile(rule) if rule else _NO_RULE
