"""Whether a channel can reach a customer: the one rule planning, sending and an operator's reply share.

In order: the profile has an address for the channel (`no_address`), the address is not marked invalid
(`invalid_address`), consent for the purpose allows it (`opted_out`, `no_consent`: see consent_block_reason),
and on WhatsApp and WeChat the customer's reply window is open (`window_closed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outreach.customers.profiles import consent_block_reason
from outreach.customers.reply_windows import REASON as WINDOW_CLOSED
from outreach.customers.reply_windows import REPLY_WINDOWS
from outreach.store.fields import ADDRESS_FIELDS


def address_block(customer: Mapping[str, Any], channel: str) -> str | None:
    """`no_address` or `invalid_address` when the profile gives no usable address on `channel`, else None."""
    fields = ADDRESS_FIELDS.get(channel)
    if fields is None or not customer.get(fields[0]):
        return "no_address"
    if customer.get(fields[1]):
        return "invalid_address"
    return None


def unreachable(
    customer: Mapping[str, Any], channel: str, purpose: str, consent: str | None, window_open: bool
) -> str | None:
    """Why `channel` cannot be used for this customer and purpose (their consent status `consent`, whether
    their reply window on the channel is open), or None when it can."""
    blocked = address_block(customer, channel) or consent_block_reason(purpose, consent)
    if blocked is None and channel in REPLY_WINDOWS and not window_open:
        return WINDOW_CLOSED
    return blocked
