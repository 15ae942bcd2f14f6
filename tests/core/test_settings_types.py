"""Every value of config/outreach.toml is checked against its field's type, every problem located at its
PATH:LINE:COL, and environment variables of the wrong type are named."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from outreach.core.errors import InputError
from outreach.core.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


# -- types: every value in the file is checked, every problem located -----------------------------------------


def load_file(tmp_path: Path, text: str, **env: str) -> Settings:
    config = tmp_path / "outreach.toml"
    config.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return load_settings({"OUTREACH_CONFIG": str(config), **env})


def problems_of(tmp_path: Path, text: str, **env: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_file(tmp_path, text, **env)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('batch_size = "many"', ':2:14: batch_size: expected an integer, got "many"'),
        ("batch_size = 2.5", ":2:14: batch_size: expected an integer, got 2.5"),
        ("batch_size = true", ":2:14: batch_size: expected an integer, got true"),
        ('smtp_timeout = "fast"', ':2:16: smtp_timeout: expected a number, got "fast"'),
        ('list_columns = "a"', ':2:16: list_columns: expected a list of strings, got "a"'),
        ('escalate_tags = ["complaint", 2]', ':2:17: escalate_tags: expected a list of strings, got ["complaint", 2]'),
        ("templates_dir = 3", ":2:17: templates_dir: expected a path (a string), got 3"),
        ('templates_dir = ""', ':2:17: templates_dir: expected a path (a string), got ""'),
        ("holidays_file = 1979-05-27", ":2:17: holidays_file: expected a path (a string), got the date 1979-05-27"),
        ("email_from = 5", ":2:14: email_from: expected a string, got 5"),
        ('smtp_url = ["smtp://u:pw@mail.example"]', ":2:12: smtp_url: expected a string"),  # no password shown
        ("default_country = 86", ":2:19: default_country: expected a string, got 86"),
        (
            'shared_address_service = "drop"',
            ':2:26: shared_address_service: expected one of suppress, send, got "drop"',
        ),
        (
            'sms_help = "call us"',
            ':2:12: sms_help: expected a table of strings (a [section] of key = "text" lines), got "call us"',
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_located_with_what_was_expected(tmp_path: Path, line: str, message: str) -> None:
    assert problems_of(tmp_path, f"# the bank's settings\n{line}\n") == [str(tmp_path / "outreach.toml") + message]


def test_keys_are_located_in_tables_after_multiline_values(tmp_path: Path) -> None:
    config = str(tmp_path / "outreach.toml")
    found = problems_of(
        tmp_path,
        '''
        email_from = """Bank
        batch_size = "not a key: inside a string" """
        list_columns = [
          "products",   # [not a table]
          "tags",
        ]
        default_timezone = "UTC"  # a comment with "quotes" and batch_size = 1
          batch_size = "lots"

        [sms_opt_out]
        zh = "回复R拒收"
        en = 1

        [provider_rates]
        sms = "100/s"
        email = 500
        ''',
    )
    assert found == [
        f'{config}:8:16: batch_size: expected an integer, got "lots"',
        f"{config}:12:6: sms_opt_out.en: expected a string, got 1",
        f"{config}:16:9: provider_rates.email: expected a string, got 500",
    ]


def test_dotted_keys_and_inline_tables_are_located(tmp_path: Path) -> None:
    config = str(tmp_path / "outreach.toml")
    found = problems_of(tmp_path, 'provider_rates.sms = 100\nsms_help = {en = "Call us", zh = 2}\n')
    assert found == [
        f"{config}:1:22: provider_rates.sms: expected a string, got 100",
        f"{config}:2:1: sms_help.zh: expected a string, got 2",
    ]


def test_unknown_keys_and_secrets_are_located_at_the_key(tmp_path: Path) -> None:
    config = str(tmp_path / "outreach.toml")
    found = problems_of(
        tmp_path,
        """
        batch_sise = 10
        templates = "tpl"
        colour = "blue"
        OUTREACH_QUEUE_NAME = "q"
        TWILIO_AUTH_TOKEN = "t"
          twilio_auth_token = "t"
        secret_key = "k"

        [smtp]
        host = "mail.example"
        """,
    )
    assert found == [
        f"{config}:1:1: unknown setting 'batch_sise' (did you mean batch_size?)",
        f"{config}:2:1: unknown setting 'templates' (did you mean templates_dir?)",
        f"{config}:3:1: unknown setting 'colour'",
        f"{config}:4:1: unknown setting 'OUTREACH_QUEUE_NAME' (did you mean queue_name?)",
        f"{config}:5:1: unknown setting 'TWILIO_AUTH_TOKEN': twilio_auth_token is a secret, set it in the "
        "environment (TWILIO_AUTH_TOKEN)",
        f"{config}:6:3: twilio_auth_token is a secret: set it in the environment (TWILIO_AUTH_TOKEN), not in a file",
        f"{config}:7:1: secret_key is a secret: set it in the environment (OUTREACH_SECRET_KEY), not in a file",
        f"{config}:9:2: unknown setting 'smtp' (did you mean smtp_url?)",
    ]


def test_every_problem_of_the_file_and_the_environment_is_reported_together(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        'batch_size = "many"\nqueue_name = "ok"\nsmtp_timeout = "fast"\nbatch_sise = 1\n',
        OUTREACH_MAX_ATTEMPTS="five",
        OUTREACH_RETRY_BACKOFF="soon",
    )
    assert sorted(p.split(": ", 1)[0].rsplit("/", 1)[-1] for p in found) == [
        "OUTREACH_MAX_ATTEMPTS",
        "OUTREACH_RETRY_BACKOFF",
        "outreach.toml:1:14",
        "outreach.toml:3:16",
        "outreach.toml:4:1",
    ]


def test_environment_variables_of_the_wrong_type_name_the_variable(tmp_path: Path) -> None:
    none = {"OUTREACH_CONFIG": str(tmp_path / "none.toml")}
    for name, raw, message in [
        ("OUTREACH_BATCH_SIZE", "many", "expected an integer, got 'many'"),
        ("OUTREACH_BATCH_SIZE", "", "expected an integer, got ''"),
        ("OUTREACH_SMTP_TIMEOUT", "fast", "expected a number, got 'fast'"),
        ("OUTREACH_SHARED_ADDRESS_MARKETING", "maybe", "expected one of suppress, send, got 'maybe'"),
        ("OUTREACH_TEMPLATES_DIR", " ", "expected a path, got ' '"),
        ("OUTREACH_SMS_HELP", '{"en": 1}', 'expected a JSON object of strings like {"en": "..."}, got \'{"en": 1}\''),
        ("OUTREACH_SMS_HELP", "en", "'en': write key=value pairs like sms=100/s,email=500/s (or a JSON object)"),
    ]:
        with pytest.raises(InputError) as caught:
            load_settings({**none, name: raw})
        assert [str(p) for p in caught.value.problems] == [f"{name}: {message}"], name


def test_valid_values_keep_working(tmp_path: Path) -> None:
    settings = load_file(
        tmp_path,
        """
        smtp_timeout = 30                     # an integer where a number is asked
        default_country = "CN"
        shared_address_service = "send"
        escalate_tags = []
        provider_rates = {sms = "100/s"}

        [sms_help]
        en = "Call 95555"
        """,
        OUTREACH_SMTP_URL="",  # empty: an optional setting unset
        OUTREACH_QUIET_HOURS="",
        OUTREACH_SMS_OPT_OUT='{"en": "Reply STOP, or call us", "default": "Reply STOP"}',
        OUTREACH_EMAIL_UNSUBSCRIBE="en=Unsubscribe: {url},default=Unsubscribe: {url}",
    )
    assert settings.smtp_timeout == 30.0 and isinstance(settings.smtp_timeout, float)
    assert (settings.default_country, settings.shared_address_service) == ("CN", "send")
    assert settings.escalate_tags == () and settings.provider_rates == {"sms": "100/s"}
    assert settings.sms_help == {"en": "Call 95555"}
    assert settings.smtp_url is None and settings.quiet_hours == ""
    assert settings.sms_opt_out == {"en": "Reply STOP, or call us", "default": "Reply STOP"}
    assert settings.email_unsubscribe == {"en": "Unsubscribe: {url}", "default": "Unsubscribe: {url}"}


def test_the_shipped_config_loads_through_the_checks() -> None:
    settings = load_settings({"OUTREACH_CONFIG": str(REPO / "config" / "outreach.toml")})
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        value, default = getattr(settings, f.name), getattr(defaults, f.name)
        if f.name == "list_columns":
            assert value == ("products",)
        elif isinstance(default, Path):
            assert value == REPO / default, f.name
        elif f.name == "database_url":
            assert value == f"sqlite:///{REPO}/outreach.db"
        else:
            assert value == default, f.name
