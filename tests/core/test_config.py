"""Settings: defaults, the config file, environment overrides, and secrets kept out of files and output."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from outreach.core.errors import InputError
from outreach.core.settings import Settings, config_file, load_settings, mask_secrets, mask_url

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


# -- types: every value in the file is checked, every problem located -----------------------------------------

OUTREACH = str(Path(sys.executable).with_name("outreach"))


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
