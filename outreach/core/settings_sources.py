"""The effective settings with where each came from (default, `FILE:LINE`, `env NAME`), secrets masked, for
`outreach config show`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outreach.core.settings import SECRET_SETTINGS, URLS_WITH_PASSWORDS, load_with_sources, mask_url

# What a secret that is set shows instead of its value, whatever its length: not even a part of it.
HIDDEN = "***"


@dataclass(frozen=True)
class EffectiveSetting:
    """One setting as the engine will use it: its value (secrets masked), and where that value came from."""

    name: str
    # as JSON would have it: text, number, true/false, a list, a table, or None (unset); secrets masked
    value: Any
    source: str
    # a secret whole (its value is HIDDEN when set); the passwords of URLs are masked inside the URL instead
    secret: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "source": self.source, "secret": self.secret}


@dataclass(frozen=True)
class EffectiveSettings:
    """Every setting in the order `Settings` declares them, and the config file read (None: none)."""

    config_file: str | None
    settings: tuple[EffectiveSetting, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"config_file": self.config_file, "settings": [s.as_dict() for s in self.settings]}


def effective_settings(env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> EffectiveSettings:
    """Load the settings as every command does (raises InputError as they do) and say where each came from."""
    loaded = load_with_sources(os.environ if env is None else env, cwd=cwd)
    # masked() already hides secrets and URL passwords; each value is masked again here by its own rule, so a
    # change there cannot let a secret through this listing.
    shown = loaded.settings.masked()
    rows = []
    for name, value in shown.items():
        secret = name in SECRET_SETTINGS
        if secret and value:
            value = HIDDEN
        elif name in URLS_WITH_PASSWORDS and isinstance(value, str):
            value = mask_url(value)
        rows.append(EffectiveSetting(name, value, str(loaded.sources[name]), secret))
    return EffectiveSettings(loaded.config_file, tuple(rows))
