"""Settings: defaults, the config file, environment overrides, and secrets kept out of files and output."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from outreach.core.errors import InputError
from outreach.core.settings import Settings, load_settings, mask_secrets, mask_url

REPO = Path(__file__).resolve().parents[2]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "outreach.toml"
    config.write_text('batch_size = 50\nemail_from = "A <a@bank.example>"\nlist_columns = ["products"]\n')
    settings = load_settings(
        {
            "OUTREACH_CONFIG": str(config),
            "OUTREACH_BATCH_SIZE": "25",
            "TWILIO_AUTH_TOKEN": "tok-secret",
            "OUTREACH_LIST_COLUMNS": "products, tags",
        }
    )
    assert settings.batch_size == 25
    assert settings.email_from == "A <a@bank.example>"
    assert settings.list_columns == ("products", "tags")
    assert settings.twilio_auth_token == "tok-secret"


def test_secrets_are_refused_in_files_and_masked_in_output(tmp_path: Path) -> None:
    config = tmp_path / "outreach.toml"
    config.write_text('secret_key = "x"\nwechat_aes_key = "k"\nsmtp_url = "smtp://user:pw@mail.example:25"\n')
    with pytest.raises(InputError) as caught:
        load_settings({"OUTREACH_CONFIG": str(config)})
    messages = [p.message for p in caught.value.problems]
    assert any("secret_key is a secret" in m for m in messages)
    assert any("wechat_aes_key is a secret" in m for m in messages)
    assert any("smtp_url holds a password" in m for m in messages)

    settings = Settings(
        smtp_url="smtp://user:pw@mail.example:25", twilio_auth_token="tok", secret_key="sk", wechat_aes_key="aes"
    )
    masked = settings.masked()
    assert masked["wechat_aes_key"] == "***"
    assert masked["smtp_url"] == "smtp://user:***@mail.example:25"
    assert masked["twilio_auth_token"] == "***" and masked["secret_key"] == "***"
    assert mask_secrets("login failed for user:pw with tok", settings) == "login failed for user:*** with ***"
    assert mask_url("smtp://mail.example:25") == "smtp://mail.example:25"


def test_bad_toml_and_bad_numbers_are_located(tmp_path: Path) -> None:
    config = tmp_path / "outreach.toml"
    config.write_text("batch_size = 10\nbroken = = 1\n")
    with pytest.raises(InputError) as caught:
        load_settings({"OUTREACH_CONFIG": str(config)})
    assert caught.value.problems[0].line == 2
    with pytest.raises(InputError, match="OUTREACH_BATCH_SIZE: expected an integer"):
        load_settings({"OUTREACH_CONFIG": str(tmp_path / "none.toml"), "OUTREACH_BATCH_SIZE": "many"})


def test_shipped_config_lists_real_settings_with_their_defaults() -> None:
    data = tomllib.loads((REPO / "config" / "outreach.toml").read_text(encoding="utf-8"))
    defaults = {f.name: f for f in dataclasses.fields(Settings)}
    assert set(data) <= set(defaults)
    settings = Settings()
    for key, value in data.items():
        if key == "list_columns":
            continue  # the shipped file names the demo's list column; the code default is none
        current = getattr(settings, key)
        assert (
            dict(current)
            if isinstance(current, dict)
            else str(current)
            if isinstance(current, Path)
            else list(current)
            if isinstance(current, tuple)
            else current
        ) == value, key


def test_list_settings_from_the_environment(tmp_path: Path) -> None:
    env = {"OUTREACH_CONFIG": str(tmp_path / "none.toml"), "OUTREACH_ESCALATE_TAGS": "complaint, fraud,"}
    assert load_settings(env).escalate_tags == ("complaint", "fraud")
    assert load_settings({**env, "OUTREACH_ESCALATE_TAGS": ""}).escalate_tags == ()
