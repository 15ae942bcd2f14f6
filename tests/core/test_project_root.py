"""Relative paths in settings resolve against the project root (the folder holding config/), found from any
folder; the real command run from another folder finds the project's templates."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from outreach.core.project_root import config_file
from outreach.core.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


OUTREACH = str(Path(sys.executable).with_name("outreach"))


# -- paths resolve against the project root -----------------------------------------------------------------


def project(tmp_path: Path, text: str = "") -> Path:
    """A project folder: config/outreach.toml holding `text`."""
    root = tmp_path / "bank"
    (root / "config").mkdir(parents=True)
    (root / "config" / "outreach.toml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def test_relative_paths_resolve_against_the_project_root_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(
        tmp_path,
        f"""
        templates_dir = "tpl"
        outbox_dir = "{tmp_path / "shared-outbox"}"
        database_url = "sqlite:///data/outreach.db?timeout=5"
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings({"OUTREACH_CONFIG": str(root / "config" / "outreach.toml"), "OUTREACH_CAMPAIGNS_DIR": "c"})
    assert settings.templates_dir == root / "tpl"
    assert settings.outbox_dir == tmp_path / "shared-outbox"  # absolute: kept
    assert settings.campaigns_dir == root / "c"  # a relative path from the environment: the root's too
    assert settings.holidays_file == root / "config" / "holidays.yaml"  # a default: the root's
    assert settings.database_url == f"sqlite:///{root}/data/outreach.db?timeout=5"

    # OUTREACH_CONFIG relative to the current folder
    monkeypatch.chdir(root / "config")
    assert load_settings({"OUTREACH_CONFIG": "outreach.toml"}).templates_dir == root / "tpl"


def test_a_config_file_outside_a_config_folder_has_its_own_folder_as_root(tmp_path: Path) -> None:
    config = tmp_path / "ops" / "bank.toml"
    config.parent.mkdir()
    config.write_text('templates_dir = "tpl"\n', encoding="utf-8")
    settings = load_settings({"OUTREACH_CONFIG": str(config)}, cwd=tmp_path)
    assert settings.templates_dir == tmp_path / "ops" / "tpl"


def test_database_urls_other_than_a_relative_sqlite_file_are_kept(tmp_path: Path) -> None:
    root = project(tmp_path)
    env = {"OUTREACH_CONFIG": str(root / "config" / "outreach.toml")}
    for url in (
        "sqlite://",
        "sqlite:///:memory:",
        f"sqlite:///{tmp_path}/abs.db",
        "sqlite:///file:shared.db?mode=memory&cache=shared&uri=true",
        "postgresql://outreach@db.example/outreach",
    ):
        assert load_settings({**env, "OUTREACH_DATABASE_URL": url}).database_url == url
    assert load_settings({**env, "OUTREACH_DATABASE_URL": "sqlite+pysqlite:///o.db"}).database_url == (
        f"sqlite+pysqlite:///{root}/o.db"
    )


def test_the_config_is_found_in_the_nearest_folder_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, "batch_size = 7\n")
    (root / "campaigns" / "autumn").mkdir(parents=True)
    monkeypatch.chdir(root / "campaigns" / "autumn")
    assert config_file({}) == root / "config" / "outreach.toml"
    settings = load_settings({})
    assert (settings.batch_size, settings.templates_dir) == (7, root / "templates")
    # the nearest wins: a project inside the project
    inner = project(root / "campaigns", "batch_size = 8\n")
    monkeypatch.chdir(inner)
    assert config_file({}) == Path("config") / "outreach.toml"
    assert load_settings({}).batch_size == 8
    assert load_settings({}).templates_dir == inner / "templates"


def test_without_a_config_file_paths_stay_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, 'templates_dir = "tpl"\n')
    monkeypatch.chdir(root)
    # OUTREACH_CONFIG naming a missing file: no config at all, no search (how tests keep config/ out)
    settings = load_settings({"OUTREACH_CONFIG": str(tmp_path / "none.toml"), "OUTREACH_OUTBOX_DIR": "out"})
    assert config_file({"OUTREACH_CONFIG": str(tmp_path / "none.toml")}) == tmp_path / "none.toml"
    assert (settings.templates_dir, settings.outbox_dir) == (Path("templates"), Path("out"))
    assert settings.database_url == "sqlite:///outreach.db"
    # no OUTREACH_CONFIG and no config/outreach.toml here or above: none either
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert config_file({}) is None
    settings = load_settings({"OUTREACH_TEMPLATES_DIR": "tpl"})
    assert (settings.templates_dir, settings.campaigns_dir) == (Path("tpl"), Path("campaigns"))


# -- the real command, run from another folder ----------------------------------------------------------------

CAMPAIGN = """\
id: hello
name: Hello
purpose: service
segment: "status == 'active'"
steps:
  - id: greet
    channel: sms
    template: hello
"""


def outreach(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    base.update(OUTREACH_SECRET_KEY="config-test-key", COLUMNS="250", **env)
    return subprocess.run([OUTREACH, *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=120)


def test_validate_finds_the_projects_templates_from_another_folder(tmp_path: Path) -> None:
    root = project(tmp_path, "# the bank's settings\n")
    (root / "templates").mkdir()
    (root / "templates" / "hello.sms.j2").write_text("Hello {{ name }}", encoding="utf-8")
    (root / "campaigns").mkdir()
    campaign = root / "campaigns" / "hello.yaml"
    campaign.write_text(CAMPAIGN, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(root / "config" / "outreach.toml")

    done = outreach(elsewhere, "campaigns", "validate", str(campaign), OUTREACH_CONFIG=config)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert f"ok  {campaign}  (hello)" in done.stdout
    # from a folder inside the project, with no OUTREACH_CONFIG: found upward
    done = outreach(root / "campaigns", "campaigns", "validate", "hello.yaml")
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    # no config file: templates/ is looked for in the current folder, where there is none
    done = outreach(elsewhere, "campaigns", "validate", str(campaign), OUTREACH_CONFIG=str(tmp_path / "none.toml"))
    assert done.returncode == 2
    assert "sms needs the template file templates/hello.sms.j2, which does not exist" in done.stderr

    # a config file with wrong types: every problem as PATH:LINE:COL, exit status 2, from any folder
    (root / "config" / "outreach.toml").write_text(
        'batch_size = "many"\nsmtp_timeout = "fast"\nlist_columns = "a"\ntemplates_dir = 3\nbatch_sise = 1\n'
        'twilio_auth_token = "tok-in-file"\n',
        encoding="utf-8",
    )
    done = outreach(elsewhere, "campaigns", "validate", str(campaign), OUTREACH_CONFIG=config)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        f'{config}:1:14: batch_size: expected an integer, got "many"',
        f'{config}:2:16: smtp_timeout: expected a number, got "fast"',
        f'{config}:3:16: list_columns: expected a list of strings, got "a"',
        f"{config}:4:17: templates_dir: expected a path (a string), got 3",
        f"{config}:5:1: unknown setting 'batch_sise' (did you mean batch_size?)",
        f"{config}:6:1: twilio_auth_token is a secret: set it in the environment (TWILIO_AUTH_TOKEN), not in a file",
    ]
    assert "tok-in-file" not in done.stderr
    done = outreach(root / "campaigns", "campaigns", "validate", "hello.yaml", OUTREACH_BATCH_SIZE="ten")
    assert done.returncode == 2
    assert "OUTREACH_BATCH_SIZE: expected an integer, got 'ten'" in done.stderr.splitlines()
