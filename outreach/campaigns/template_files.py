"""Where a named template's files live under OUTREACH_TEMPLATES_DIR, per channel: `NAME.subject.j2`,
`NAME.txt.j2` and (optional) `NAME.html.j2` for email; `NAME.sms.j2` for SMS, which WhatsApp and WeChat use
too unless `NAME.whatsapp.j2` / `NAME.wechat.j2` exist."""

from __future__ import annotations

from pathlib import Path

EMAIL_PARTS = ("subject", "text", "html")
OPTIONAL_PARTS = frozenset({"html"})
_FILE_SUFFIX = {"subject": "subject", "text": "txt", "html": "html"}


def candidate_files(root: Path, name: str, channel: str) -> dict[str, tuple[Path, ...]]:
    """part -> the files that may hold it, the preferred first."""
    if channel == "email":
        return {part: (root / f"{name}.{_FILE_SUFFIX[part]}.j2",) for part in EMAIL_PARTS}
    if channel == "sms":
        return {"body": (root / f"{name}.sms.j2",)}
    return {"body": (root / f"{name}.{channel}.j2", root / f"{name}.sms.j2")}
