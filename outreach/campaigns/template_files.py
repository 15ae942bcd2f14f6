"""Where a named template's files live under OUTREACH_TEMPLATES_DIR, per channel: `NAME.subject.j2`,
`NAME.txt.j2` and (optional) `NAME.html.j2` for email; `NAME.sms.j2` for SMS, which WhatsApp and WeChat use
too unless `NAME.whatsapp.j2` / `NAME.wechat.j2` exist.

A name is checked here, whoever gives it (a campaign's `template:`, `outreach reply --template`): folders and
names of letters, digits, `_` and `-`, and files that are inside the templates folder once every symbolic
link is followed, so no name reads a file elsewhere on the machine.
"""

from __future__ import annotations

import re
from pathlib import Path

EMAIL_PARTS = ("subject", "text", "html")
OPTIONAL_PARTS = frozenset({"html"})
_FILE_SUFFIX = {"subject": "subject", "text": "txt", "html": "html"}

_NAME = r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*"
TEMPLATE_NAME_PATTERN = f"^{_NAME}$"  # as the campaign model and its JSON Schema write it
NAME_RULE = "template names are folders and names of letters, digits, _ and -, like nps/reminder"


class TemplateNameError(ValueError):
    """A template name that is not one, or whose files would be read from outside the templates folder."""


def candidate_files(root: Path, name: str, channel: str) -> dict[str, tuple[Path, ...]]:
    """part -> the files that may hold it, the preferred first; TemplateNameError for a name that is not
    one or leads out of `root`."""
    if not re.fullmatch(_NAME, name):
        raise TemplateNameError(f"{name!r} is not valid: {NAME_RULE}")
    files: dict[str, tuple[Path, ...]]
    if channel == "email":
        files = {part: (root / f"{name}.{_FILE_SUFFIX[part]}.j2",) for part in EMAIL_PARTS}
    elif channel == "sms":
        files = {"body": (root / f"{name}.sms.j2",)}
    else:
        files = {"body": (root / f"{name}.{channel}.j2", root / f"{name}.sms.j2")}
    for candidates in files.values():
        for path in candidates:
            _check_inside(root, path)
    return files


def _check_inside(root: Path, path: Path) -> None:
    """`path`, with its symbolic links followed (those of folders on the way and of the file itself), must be
    under `root`: the name's pattern keeps out `..` and absolute paths, only a link can lead elsewhere."""
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a loop of links
        inside = False
    if not inside:
        raise TemplateNameError(f"{path} leads out of the templates folder {root} by a symbolic link: not read")
