"""Per-language content in campaign files: which translation a customer gets.

A step's content for a channel is either one message or one per language:

    content:
      email:
        zh: {subject: "...", text: "..."}
        en: {subject: "...", text: "..."}
      sms: {zh: "...", en: "..."}

A customer whose locale is `zh-CN` gets `zh_CN` if written, else `zh`; `en_GB` gets `en_GB`, else `en`;
anyone else gets the fallback: the campaign's `default_locale`, or the first language written. Tags are
compared without regard to case or `-`/`_` (zh-CN = zh_cn = zh_CN).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from babel import Locale, UnknownLocaleError

# A language (2-3 letters), optionally a script (Hans) and/or a region (CN, 419): zh, zh_CN, zh-Hant-TW, es_419.
LOCALE_KEY = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z]{4})?([_-]([A-Za-z]{2}|\d{3}))?$")


def looks_like_locale(key: object) -> bool:
    return isinstance(key, str) and bool(LOCALE_KEY.match(key))


def normalize(tag: str) -> str:
    """zh-cn, zh_CN, ZH-cn -> zh_CN; zh-hant-tw -> zh_Hant_TW."""
    parts = re.split(r"[_-]", tag.strip())
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.title() if len(part) == 4 else part.upper())
    return "_".join(out)


def check_locale(tag: str) -> str:
    """The tag, normalised; ValueError if it is not a language tag Babel (CLDR) knows."""
    if not looks_like_locale(tag):
        raise ValueError(f"{tag!r} is not a language tag (like zh, zh_CN or en)")
    normal = normalize(tag)
    try:
        Locale.parse(normal)
    except (UnknownLocaleError, ValueError):
        raise ValueError(f"{tag!r} is not a language CLDR knows (like zh, zh_CN or en)") from None
    return normal


def choose(available: Iterable[str], customer_locale: str | None, fallback: str) -> str:
    """The translation for a customer: exact tag, then its language, then `fallback` (all normalised)."""
    written = {normalize(t): t for t in available}
    if customer_locale and looks_like_locale(customer_locale):
        wanted = normalize(customer_locale)
        while wanted:
            if wanted in written:
                return written[wanted]
            wanted = wanted.rpartition("_")[0]
    return written[normalize(fallback)]


def same_language(tag: str, customer_locale: str | None) -> bool:
    """Whether a customer's locale is of the language `tag` is written in (zh_CN and zh are)."""
    if not customer_locale or not looks_like_locale(customer_locale):
        return False
    return normalize(customer_locale).split("_")[0] == normalize(tag).split("_")[0]
