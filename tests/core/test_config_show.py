"""`outreach config show`, run as an operator runs it: each setting's value and where it came from (default,
the config file's line, a variable), and no secret ever on the screen or in `--json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CONFIG = """\
# the bank's settings
batch_size = 50
email_from = "Branch <branch@bank.example>"
smtp_url = "smtp://mailer@mail.bank.example:587"

[sms_help]
en = "Call 95555"
default = "Call 95555"
"""

# Every secret, each with a value found nowhere else; and the passwords inside the three URLs, one of them
# written with a `/` (which urlsplit would cut short, and SQLAlchemy reads whole).
SECRETS = {
    "TWILIO_AUTH_TOKEN": "sekrit-twilio-123",
    "OUTREACH_SECRET_KEY": "sekrit-signing-456",
    "OUTREACH_WECHAT_APP_SECRET": "sekrit-wechat-789",
    "OUTREACH_WECHAT_TOKEN": "sekrit-wtoken-012",
    "OUTREACH_WECHAT_AES_KEY": "sekritAesKey" + "x" * 31,
    "OUTREACH_SMTP_URL": "smtp://mailer:sekrit-smtp-345@mail.bank.example:587",
    "OUTREACH_DATABASE_URL": "postgresql://app:sekrit/db-678@db.bank.example/outreach",
    "OUTREACH_BROKER_URL": "redis://:sekrit-redis-901@redis.bank.example:6379/0",
}
PASSWORDS = ["sekrit-smtp-345", "sekrit/db-678", "sekrit-redis-901"]


def project(tmp_path: Path, text: str = CONFIG) -> Path:
    root = tmp_path / "bank"
    (root / "config").mkdir(parents=True)
    (root / "config" / "outreach.toml").write_text(text, encoding="utf-8")
    return root


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command, with only the variables given (the config file found from `cwd`, as for a user)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    return subprocess.run(
        [OUTREACH, "config", "show", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def by_name(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # the whole of stdout is one JSON document
    return {s["name"]: s for s in document["settings"]}


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The table's cells by setting (the first line of each row: `│ name │ value │ source │`)."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 3 and cells[0]:
            rows[cells[0]] = cells
    return rows


def test_each_setting_says_whether_it_is_a_default_a_line_of_the_file_or_a_variable(tmp_path: Path) -> None:
    root = project(tmp_path)
    env = {"OUTREACH_EMAIL_FROM": "Head office <ho@bank.example>", "OUTREACH_SMS_FROM": ""}

    settings = by_name(run(root, "--json", **env))
    assert settings["batch_size"] == {
        "name": "batch_size",
        "value": 50,
        "source": "config/outreach.toml:2",
        "secret": False,
    }
    assert settings["sms_help"]["source"] == "config/outreach.toml:6"  # a table: its [header]
    assert settings["sms_help"]["value"] == {"en": "Call 95555", "default": "Call 95555"}
    # the variable wins over the file's line 3
    assert settings["email_from"]["value"] == "Head office <ho@bank.example>"
    assert settings["email_from"]["source"] == "env OUTREACH_EMAIL_FROM"
    # an empty variable unsets an optional setting: it is still where the value came from
    assert (settings["sms_from"]["value"], settings["sms_from"]["source"]) == (None, "env OUTREACH_SMS_FROM")
    assert settings["max_attempts"]["value"] == 5 and settings["max_attempts"]["source"] == "default"
    # a relative path is shown as the commands use it: in the project root
    assert settings["templates_dir"] == {
        "name": "templates_dir",
        "value": str(root / "templates"),
        "source": "default",
        "secret": False,
    }
    assert json.loads(run(root, "--json").stdout)["config_file"] == "config/outreach.toml"

    shown = run(root, **env, COLUMNS="200")
    assert shown.returncode == 0 and shown.stderr == ""
    assert shown.stdout.splitlines()[0] == "config file: config/outreach.toml"
    rows = table_rows(shown.stdout)
    assert rows["batch_size"] == ["batch_size", "50", "config/outreach.toml:2"]
    assert rows["email_from"] == ["email_from", "Head office <ho@bank.example>", "env OUTREACH_EMAIL_FROM"]
    assert rows["sms_from"] == ["sms_from", "unset", "env OUTREACH_SMS_FROM"]
    assert rows["max_attempts"] == ["max_attempts", "5", "default"]
    assert rows["smtp_url"] == ["smtp_url", "smtp://mailer@mail.bank.example:587", "config/outreach.toml:4"]

    # from a folder below, the file found further up is named by its full path
    below = root / "campaigns" / "autumn"
    below.mkdir(parents=True)
    found = json.loads(run(below, "--json").stdout)
    config = root / "config" / "outreach.toml"
    assert found["config_file"] == str(config)
    assert {s["name"]: s["source"] for s in found["settings"]}["batch_size"] == f"{config}:2"

    # OUTREACH_CONFIG naming a file that does not exist: no file, every value a default
    none = json.loads(run(root, "--json", OUTREACH_CONFIG="missing.toml").stdout)
    assert none["config_file"] is None
    assert {s["source"] for s in none["settings"]} == {"default"}


def test_no_secret_is_ever_printed_in_the_table_or_the_json(tmp_path: Path) -> None:
    root = project(tmp_path)
    secret_values = [v for k, v in SECRETS.items() if not k.endswith("_URL")] + PASSWORDS

    outputs = [run(root, "--json", **SECRETS)]
    outputs += [run(root, **SECRETS, COLUMNS=columns) for columns in ("80", "300")]
    for done in outputs:
        assert done.returncode == 0, done.stderr
        # a cell wrapped over two lines must not hide a secret from this check: look at the text unwrapped too
        unwrapped = "".join(done.stdout.replace("│", "").split())
        for value in secret_values:
            assert value not in done.stdout and value not in done.stderr and value not in unwrapped, value
            assert "sekrit" not in unwrapped  # not even a part of one

    settings = by_name(outputs[0])
    for name in ("twilio_auth_token", "secret_key", "wechat_app_secret", "wechat_token", "wechat_aes_key"):
        assert (settings[name]["value"], settings[name]["secret"]) == ("***", True), name
        assert settings[name]["source"].startswith("env ")
    assert settings["smtp_url"]["value"] == "smtp://mailer:***@mail.bank.example:587"
    assert settings["database_url"]["value"] == "postgresql://app:***@db.bank.example/outreach"
    assert settings["broker_url"]["value"] == "redis://:***@redis.bank.example:6379/0"
    assert settings["database_url"]["source"] == "env OUTREACH_DATABASE_URL"
    assert settings["secret_key"]["source"] == "env OUTREACH_SECRET_KEY"

    rows = table_rows(outputs[2].stdout)
    assert rows["twilio_auth_token"] == ["twilio_auth_token", "***", "env TWILIO_AUTH_TOKEN"]
    assert rows["smtp_url"] == ["smtp_url", "smtp://mailer:***@mail.bank.example:587", "env OUTREACH_SMTP_URL"]

    # a secret of one or two characters is hidden the same way: nothing of it shows
    short = by_name(run(root, "--json", OUTREACH_WECHAT_TOKEN="q", OUTREACH_SECRET_KEY="Zx"))
    assert short["wechat_token"]["value"] == "***" and short["secret_key"]["value"] == "***"
    # and one that is not set says so
    assert by_name(run(root, "--json"))["wechat_token"]["value"] is None


def test_a_bad_config_file_is_reported_at_its_line_with_status_2_and_no_secret(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        textwrap.dedent(
            """\
            batch_size = "fifty"
            secret_key = "sekrit-in-the-file"
            database_url = "postgresql://app:sekrit/in-file@db.bank.example/outreach"
            """
        ),
    )
    for args in ((), ("--json",)):
        done = run(root, *args)
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            'config/outreach.toml:1:14: batch_size: expected an integer, got "fifty"',
            "config/outreach.toml:2:1: secret_key is a secret: set it in the environment (OUTREACH_SECRET_KEY),"
            " not in a file",
            "config/outreach.toml:3:16: database_url holds a password: set it in the environment"
            " (OUTREACH_DATABASE_URL) instead",
        ]
        assert "sekrit" not in done.stderr

    (root / "config" / "outreach.toml").write_text("batch_size = = 1\n", encoding="utf-8")
    broken = run(root, "--json")
    assert broken.returncode == 2 and broken.stdout == ""
    assert broken.stderr.startswith("config/outreach.toml:1:")
