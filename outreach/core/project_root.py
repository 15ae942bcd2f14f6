"""The project root: the folder holding `config/`, found as git finds `.git`, against which relative paths in
settings (templates, campaigns, outbox, holidays, a SQLite file) resolve."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

CONFIG_ENV = "OUTREACH_CONFIG"
DEFAULT_CONFIG_PATH = Path("config") / "outreach.toml"


def config_file(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """The config file settings come from: OUTREACH_CONFIG when set (even if that file does not exist: then
    there is none, and nothing is searched for), else `config/outreach.toml` in `cwd` or the nearest folder
    above it (like git looks for `.git`), else None.

    `cwd` is the current directory unless given; the path returned is relative to the current directory
    like OUTREACH_CONFIG (`config/outreach.toml` when found in it), or absolute when found further up.
    """
    env = os.environ if env is None else env
    base = Path() if cwd is None else Path(cwd)
    if env.get(CONFIG_ENV):
        return base / Path(env[CONFIG_ENV]).expanduser()
    if (base / DEFAULT_CONFIG_PATH).is_file():
        return base / DEFAULT_CONFIG_PATH
    for folder in Path(os.path.abspath(base)).parents:
        if (folder / DEFAULT_CONFIG_PATH).is_file():
            return folder / DEFAULT_CONFIG_PATH
    return None


def project_root(config: Path) -> Path:
    """The folder relative paths in settings resolve against: the one holding `config/` when the file is
    `<root>/config/<name>.toml`, else the file's own folder (absolute)."""
    folder = Path(os.path.abspath(config)).parent
    return folder.parent if folder.name == "config" else folder


def resolve_sqlite_url(url: str, root: Path | None) -> str:
    """`sqlite:///outreach.db` -> `sqlite:////<root>/outreach.db`; absolute and in-memory SQLite databases,
    `file:` URIs, other databases and any URL when there is no root are returned unchanged."""
    match = _SQLITE_URL.match(url)
    if root is None or match is None:
        return url
    prefix, database, query = match.group(1), match.group(2), match.group(3) or ""
    if not database or database == ":memory:" or database.startswith("file:") or Path(database).is_absolute():
        return url
    quoted = str(root).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    return f"{prefix}{quoted}/{database}{query}"


_SQLITE_URL = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?$", re.DOTALL)


def resolve_path(value: Path, root: Path) -> Path:
    value = value.expanduser()
    return value if value.is_absolute() else root / value
