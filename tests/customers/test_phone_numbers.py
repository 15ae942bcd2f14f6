"""The E.164 fast path gives exactly `phonenumbers`' verdict and form, on every region's example numbers of
every type and on variants of them (a digit more, a digit less, one changed, a leading zero, spaces)."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from outreach.customers.contacts import normalize_phone
from outreach.customers.phone_numbers import valid_e164


def full_verdict(raw: str, region: str | None) -> tuple[str, str | None]:
    """`normalize_phone` as it was before the fast path: phonenumbers alone."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return raw, "not a phone number"
    if not phonenumbers.is_valid_number(number):
        return raw, "not valid"
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), None


def corpus() -> list[str]:
    rng = random.Random(8)
    numbers: set[str] = set()
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    codes = sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
    examples = [phonenumbers.example_number_for_type(r, t) for r in regions for t in PhoneNumberType.values()]
    examples += [phonenumbers.example_number_for_non_geo_entity(c) for c in codes]
    for example in examples:
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
        numbers.add(e164)
        digits = e164[1:]
        for _ in range(4):
            at = rng.randrange(1, len(digits))
            numbers.add("+" + digits[:at] + str(rng.randrange(10)) + digits[at + 1 :])  # one digit changed
            numbers.add("+" + digits[:at] + str(rng.randrange(10)) + digits[at:])  # one digit more
            numbers.add("+" + digits[:at] + digits[at + 1 :])  # one digit less
        numbers.add("+" + digits[:2] + "0" + digits[2:])
        numbers.add(phonenumbers.format_number(example, PhoneNumberFormat.INTERNATIONAL))
    numbers.update(["+", "+0", "+1", "+12", "+8613800138000", "+86013800138000", "+7 916 123-45-67", "+99999999"])
    return sorted(numbers)


def test_the_fast_path_agrees_with_phonenumbers_on_every_region() -> None:
    numbers = corpus()
    assert len(numbers) > 5_000
    fast = 0
    for raw in numbers:
        for region in (None, "CN", "US"):
            expected = full_verdict(raw, region)
            got = normalize_phone(raw, region)
            assert (got[0], got[1] is None) == (expected[0], expected[1] is None), (raw, region, got, expected)
        quick = valid_e164(raw)
        if quick is not None:
            fast += 1
            assert quick == full_verdict(raw, None)[0]
    assert fast > 3_000, "the valid E.164 numbers of single-region country codes take the fast path"
    for common in ("+8613800138000", "+33612345678", "+819012345678", "+6591234567"):
        assert valid_e164(common) == common
