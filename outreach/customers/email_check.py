"""Email addresses checked and normalised exactly as email-validator does (`validate_email`, no DNS), faster.

An import checks millions of addresses, nearly all of one shape: a plain ASCII dot-atom local part, one
@-sign and a host name. For that shape `validate_email` does nothing but check the local part against
RFC 5322's dot-atom, lower-case the RFC 2142 role names, validate the domain and check the lengths; the
domain's verdict depends on the domain alone, so it is worked out once per distinct domain. Every other
address (quoted or internationalised local parts, Unicode anywhere, bracketed IP literals, display names,
anything invalid) goes to `validate_email` itself, so errors always carry its messages.
tests/customers/test_email_check.py compares the two on many varied and tricky addresses.
"""

from __future__ import annotations

import functools

import email_validator
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from email_validator.syntax import validate_email_domain_name

_ROLE_NAMES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_DOMAINS_KEPT = 65_536


def checked_email(raw: str) -> tuple[str, str | None]:
    """The normalised address, and None; or `raw` and why it is not an email address."""
    local, at, domain = raw.partition("@")
    if at and raw.isascii() and "@" not in domain and not email_validator.STRICT and DOT_ATOM_TEXT.match(local):
        names = _domain_names(domain)
        if names is not None:
            if local.lower() in _ROLE_NAMES:
                local = local.lower()
            normalized = local + "@" + names[0]
            if (
                len(raw) <= EMAIL_MAX_LENGTH
                and len(normalized.encode("utf8")) <= EMAIL_MAX_LENGTH
                and len(local) + 1 + len(names[1]) <= EMAIL_MAX_LENGTH
            ):
                return normalized, None
    return full_check(raw)


def full_check(raw: str) -> tuple[str, str | None]:
    """`checked_email` through `validate_email` alone."""
    try:
        return validate_email(raw, check_deliverability=False).normalized, None
    except EmailNotValidError as exc:
        return raw, f"email {raw!r}: {exc}"


@functools.lru_cache(maxsize=_DOMAINS_KEPT)
def _domain_names(domain: str) -> tuple[str, str] | None:
    """A host name's normalised and ASCII forms, or None when it is empty, bracketed or invalid (the caller
    then asks `validate_email`, which says why)."""
    if not domain or domain.startswith("["):
        return None
    try:
        found = validate_email_domain_name(
            domain,
            test_environment=email_validator.TEST_ENVIRONMENT,
            globally_deliverable=email_validator.GLOBALLY_DELIVERABLE,
        )
    except EmailNotValidError:
        return None
    return found["domain"], found["ascii_domain"]
