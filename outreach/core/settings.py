"""Settings: defaults in code, `config/outreach.toml` over them, `OUTREACH_*` environment variables over both.

Secrets (auth tokens, the signing key, passwords inside URLs) are read from the environment only and are
never printed: `masked()` gives a copy safe for logs and errors. A URL's password is read up to its last `@`
(`postgresql://u:pa/ss@db` has the password `pa/ss`, as SQLAlchemy reads it), to refuse and mask it whole.
`load_with_sources` also says where each value came from (`outreach config show`).

The config file is the one OUTREACH_CONFIG names; if that file does not exist there is no config file (tests
and benchmarks point it at a missing file to keep the working tree's config out), and nothing is searched
for. Without OUTREACH_CONFIG it is `config/outreach.toml` in the current directory or the nearest folder
above it, as git finds `.git`: the first one found is used.

Every value in the file is checked against its field's type (str, int, float - an integer is accepted -,
bool, a path, a list of strings, a table of strings, one of a few words); a wrong type, an unknown key (with
a "did you mean" when one is close) or a secret written in the file is reported as `PATH:LINE:COL: message`,
at the value (at the key for unknown keys and secrets). An environment variable that does not parse is
reported under the variable's name. Every problem is raised together in one InputError; nothing is applied.

Paths (every Path field: templates_dir, campaigns_dir, outbox_dir, holidays_file, spill_dir) and the file of a SQLite
database_url (`sqlite:///outreach.db`) resolve against the project root, the folder that holds `config/`:
the config file's folder's parent when that folder is named `config`, else the config file's own folder.
This holds for the code's defaults, the file's values and relative paths given in OUTREACH_* variables
alike, so a command run from any folder finds the project's templates. `~` is expanded; absolute paths,
in-memory and `file:` SQLite databases and other database URLs are kept as written. When there is no config
file, nothing is resolved: relative paths stay relative to the current directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit, urlunsplit

from outreach.core.errors import InputError, Problem
from outreach.core.project_root import (
    config_file,
    project_root,
    resolve_path,
    resolve_sqlite_url,
)
from outreach.core.toml_positions import key_positions, locate

# Settings whose environment variable is not OUTREACH_<NAME>.
_ENV_NAMES = {
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
}
_SECRETS = {"twilio_auth_token", "secret_key", "wechat_app_secret", "wechat_token", "wechat_aes_key"}
_URLS_WITH_CREDENTIALS = {"database_url", "broker_url", "smtp_url"}
# The settings that are secrets whole (never shown, not even in part), and those that may hold a password.
SECRET_SETTINGS = frozenset(_SECRETS)
URLS_WITH_PASSWORDS = frozenset(_URLS_WITH_CREDENTIALS)


@dataclass(frozen=True)
class Settings:
    """Everything the engine can be told; one immutable object passed to whatever needs it."""

    database_url: str = "sqlite:///outreach.db"
    broker_url: str = "stub://"
    broker_namespace: str = "outreach"
    queue_name: str = "outreach"
    templates_dir: Path = Path("templates")
    campaigns_dir: Path = Path("campaigns")
    outbox_dir: Path = Path("outbox")
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None

    smtp_url: str | None = None
    smtp_timeout: float = 30.0
    email_from: str = "Bank <no-reply@bank.example>"
    # The envelope sender (SMTP MAIL FROM; bounces go there), unset: the From address. `{id}` in its local part
    # (bounces+{id}@bank.example), or a local part ending in + (bounces+@bank.example), gives every message its
    # own address (VERP), which names the message in a bounce that quotes nothing of it.
    email_return_path: str | None = None

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    twilio_timeout: float = 30.0
    sms_from: str | None = None
    # The bank's WhatsApp sender (E.164 number, without `whatsapp:`), or a Messaging Service MG... id.
    whatsapp_from: str | None = None

    # WeChat Official Account (customer-service messages): app id and secret (env only), the token of the
    # server-verification signature (env only), the EncodingAESKey of safe mode (env only; set, pushes must
    # be encrypted), the API's base URL and the request timeout (s).
    wechat_app_id: str | None = None
    wechat_app_secret: str | None = None
    wechat_token: str | None = None
    wechat_aes_key: str | None = None
    # How far a push's `timestamp` may be from our clock, either way (a duration); inside it each
    # (timestamp, nonce) is taken once, so a captured push cannot be replayed.
    wechat_replay_window: str = "5m"
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_timeout: float = 30.0

    # Whether campaigns send to an address more than one customer has (suppress | send), per purpose, unless a
    # campaign says `shared_address:` itself. Service messages carry one customer's details: suppressed.
    shared_address_service: str = "suppress"
    shared_address_marketing: str = "send"

    # Region for phone numbers written without a country code when a row has no `country`.
    default_country: str | None = None
    # Attribute columns whose `a;b;c` values are lists.
    list_columns: tuple[str, ...] = ()

    # Ledger ids per broker message, and how a batch retries transient failures.
    batch_size: int = 100
    max_attempts: int = 5
    retry_backoff: float = 5.0
    retry_backoff_max: float = 600.0
    # Provider calls in flight at once within one batch (SMS over HTTP).
    send_concurrency: int = 8
    # Worker threads the in-process (stub://) broker runs.
    stub_worker_threads: int = 4
    # Rates per channel shared by every worker ({"sms": "100/s", "email": "500/s"}; a rate is N/s, N/m or N/h;
    # a channel not named is unlimited), on top of each campaign's own `throttle`; the stricter one wins.
    provider_rates: Mapping[str, str] = field(default_factory=dict)
    # Seconds of throttled sending a batch takes on at once: rows that could not start within it go back on
    # the queue (keeping their place in line), so no row stays claimed much longer than this.
    throttle_horizon: float = 10.0

    # Opt-out wording appended to marketing SMS, by locale (language prefix matches, "default" last).
    sms_opt_out: Mapping[str, str] = field(
        default_factory=lambda: {
            "zh": "回复R拒收",
            "en": "Reply STOP to opt out",
            "default": "Reply STOP to opt out",
        }
    )
    # Unsubscribe line appended to marketing email; `{url}` is the signed link.
    email_unsubscribe: Mapping[str, str] = field(
        default_factory=lambda: {
            "zh": "如不希望再收到此类邮件,请点击退订:{url}",
            "en": "To stop receiving these emails, unsubscribe here: {url}",
            "default": "To stop receiving these emails, unsubscribe here: {url}",
        }
    )

    # Marketing messages a customer may get across all campaigns, unless a campaign sets `frequency_cap`:
    # at most `frequency_cap_max` per `frequency_cap_per` (0 = no default cap).
    frequency_cap_max: int = 0
    frequency_cap_per: str = "7d"

    # `failures replay` of more rows than this needs a --reason (kept in the audit log).
    replay_reason_threshold: int = 100

    # The scheduler: how often it looks for due occurrences and follow-ups (seconds), how late a missed
    # occurrence may still run after downtime, and how long a standby waits before taking over a lock
    # whose holder stopped renewing it (seconds).
    scheduler_interval: float = 15.0
    schedule_grace: str = "1h"
    scheduler_lock_ttl: float = 10.0
    # The sweep (`outreach sweep`, and the scheduler once a minute): rows queued but not taken by a worker for
    # this long are enqueued again (the broker lost them), rows left `sending` this long become `unknown`
    # (their worker died mid-call). Longer than a batch can legitimately take: the actors' 10-minute limit.
    sweep_after: str = "15m"
    # When the store goes away mid-batch, a worker keeps the providers' answers it holds and tries to write
    # them again for this long (seconds; nothing new is sent meanwhile), then writes them to a file in
    # spill_dir, which the next `outreach worker` start and `outreach sweep` apply to the ledger.
    record_retry_seconds: float = 60.0
    spill_dir: Path = Path("spill")

    # Quiet hours ("21:00-08:00": messages go 08:00-21:00 in each customer's time zone) of marketing campaigns
    # and surveys (a campaign with a step that `expects:` an answer) that set none of their own; "" = none
    # (commands that plan warn about it). quiet_hours_service: the same for the other service campaigns
    # (notices, alerts), none by default; a service campaign may opt out of either with `quiet_hours: off`.
    # Customers without a time zone use the campaign's schedule zone, else default_timezone. Marketing also
    # waits out the holidays listed in holidays_file for the customer's country.
    quiet_hours: str = "21:00-08:00"
    quiet_hours_service: str = ""
    default_timezone: str = "UTC"
    holidays_file: Path = Path("config") / "holidays.yaml"

    # Inbound: how long after a message a reply still counts as answering it (a survey answer, a reply in
    # the report), and the largest webhook body accepted (bytes).
    reply_window: str = "7d"
    survey_window: str = "7d"
    max_request_bytes: int = 65536
    # Conversations: a customer's message after this much quiet opens a new conversation instead of
    # extending the last one. A conversation tagged with one of escalate_tags that no operator has answered
    # for escalate_after is escalated by email to service_email (unset: no escalation).
    conversation_idle: str = "7d"
    escalate_after: str = "2h"
    escalate_tags: tuple[str, ...] = ("complaint",)
    service_email: str | None = None
    # Soft bounces (4.x.x) to one address before it is treated as invalid.
    soft_bounce_limit: int = 3
    # What an SMS HELP gets back, and the confirmation of a keyword opt-out / opt-in, by locale. Twilio answers
    # its own STOP/START words itself, so those get no reply from us.
    sms_help: Mapping[str, str] = field(
        default_factory=lambda: {
            "zh": "【银行】客服热线95555。回复R拒收营销短信。",
            "en": "Bank customer service: call 95555. Reply STOP to opt out.",
            "default": "Bank customer service: call 95555. Reply STOP to opt out.",
        }
    )
    sms_opted_out: Mapping[str, str] = field(
        default_factory=lambda: {
            "zh": "您已退订营销短信,如需恢复请回复START。",
            "en": "You have been unsubscribed from marketing messages. Reply START to resubscribe.",
            "default": "You have been unsubscribed from marketing messages. Reply START to resubscribe.",
        }
    )

    def masked(self) -> dict[str, Any]:
        """The settings as a dict with every secret replaced by `***`, for logs and `config show`."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRETS and value:
                value = "***"
            elif f.name in _URLS_WITH_CREDENTIALS and isinstance(value, str):
                value = mask_url(value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


_HINTS = get_type_hints(Settings)


def mask_url(url: str) -> str:
    """`smtp://user:secret@host` -> `smtp://user:***@host`; anything else unchanged (never raises)."""
    return _split_password(url)[0]


def url_password(url: str) -> str | None:
    """The password written in a URL (as written, not decoded), as loosely as any parser might read it."""
    return _split_password(url)[1]


def _split_password(url: str) -> tuple[str, str | None]:
    """(the URL with its password masked, the password) - (url, None) when it holds none."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed `[` of an IPv6 host: read loosely below
        parts = None
    if parts is not None and "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if not colon:
            return url, None
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}")), password
    # urlsplit ends the user info at the first `/`, `?` or `#`, but SQLAlchemy (and a person) reads
    # `postgresql://u:pa/ss@db` as the password `pa/ss`: up to the last `@`, that is hidden too. An `@` later
    # in a URL with a port (`smtp://host:25/?x=a@b`) is hidden with it: better too much than a password shown.
    scheme, sep, rest = url.partition("://")
    prefix = scheme + sep if sep else ""
    if not sep:
        rest = url
    userinfo, at, host = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or any(c in user for c in "/?#"):
        return url, None
    return f"{prefix}{user}:***@{host}", password


def mask_secrets(text: str, settings: Settings) -> str:
    """Remove every secret value of `settings` from `text` (for provider error messages)."""
    secrets: list[str] = [getattr(settings, name) for name in sorted(_SECRETS) if getattr(settings, name)]
    for name in _URLS_WITH_CREDENTIALS:
        value = getattr(settings, name)
        if isinstance(value, str):
            password = url_password(value)
            if password:
                secrets.append(password)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def load_settings(
    env: Mapping[str, str] | None = None, path: Path | None = None, *, cwd: Path | None = None
) -> Settings:
    """Read the config file (if there is one) and the environment into Settings.

    The file is `path`, else the one `config_file` finds (OUTREACH_CONFIG, else `config/outreach.toml` in
    `cwd` or the nearest folder above it). Every value is checked against its field's type; every problem of
    the file and of the environment is raised together in one InputError (nothing is half applied).
    Relative paths, and a relative SQLite database, resolve against the project root when a file was read
    (see the module's docstring), else stay relative to the current directory.
    """
    return load_with_sources(env, path, cwd=cwd).settings


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from: the code's default, a line of the config file, or a variable."""

    kind: Literal["default", "file", "env"]
    # the config file as problems name it (for "file"), or the variable's name (for "env")
    where: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "env":
            return f"env {self.where}"
        if self.kind == "file":
            return f"{self.where}:{self.line}" if self.line is not None else str(self.where)
        return "default"


@dataclass(frozen=True)
class Loaded:
    """Settings as `load_settings` makes them, with where each value came from and the config file read."""

    settings: Settings
    sources: Mapping[str, Source]
    # the config file as problems name it, when one was read
    config_file: str | None


def load_with_sources(
    env: Mapping[str, str] | None = None, path: Path | None = None, *, cwd: Path | None = None
) -> Loaded:
    """`load_settings`, also saying where each setting's value came from (`outreach config show`).

    The sources are recorded while the values are read, by the same code, so they cannot disagree with the
    settings the other commands get; a value from the environment wins over the file's, as it does there.
    """
    env = os.environ if env is None else env
    if path is None:
        path = config_file(env, cwd)
    elif cwd is not None:
        path = Path(cwd) / path
    values: dict[str, Any] = {}
    sources = {name: Source("default") for name in _FIELDS}
    problems: list[Problem] = []
    root: Path | None = None
    shown: str | None = None
    if path is not None:
        full = Path(os.path.abspath(path))
        if full.exists():
            root, shown = project_root(full), str(path)
            file_values, lines, file_problems = _read_toml(full, shown)
            values.update(file_values)
            sources.update({name: Source("file", shown, lines.get(name)) for name in file_values})
            problems += file_problems
    for name, spec in _FIELDS.items():
        if spec.env_name in env:
            try:
                values[name] = _from_env(spec, env[spec.env_name])
                sources[name] = Source("env", spec.env_name)
            except _BadValue as bad:
                problems.append(Problem(spec.env_name, None, None, str(bad)))
    if problems:
        raise InputError(problems)
    if root is not None:
        for name, spec in _FIELDS.items():
            value = values.get(name, _DEFAULTS.get(name))
            if spec.kind == "path" and isinstance(value, Path):
                values[name] = resolve_path(value, root)
        values["database_url"] = resolve_sqlite_url(values.get("database_url", _DEFAULTS["database_url"]), root)
    return Loaded(Settings(**values), sources, shown)


# -- the fields' types ---------------------------------------------------------------------------------------

# Settings that take one of a few words (the code that reads them refuses anything else).
_CHOICES: dict[str, tuple[str, ...]] = {
    "shared_address_service": ("suppress", "send"),
    "shared_address_marketing": ("suppress", "send"),
}

_EXPECTED = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "path": "a path (a string)",
    "strings": "a list of strings",
    "table": "a table of strings",
}


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # a key of _EXPECTED, or "choice"
    optional: bool
    env_name: str
    choices: tuple[str, ...] = ()

    @property
    def expected(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        return _EXPECTED[self.kind]


def _field_spec(name: str, hint: Any) -> _Field:
    """What a field's annotation asks for; a type this module cannot check is refused at import time."""
    optional = False
    if get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint):
        rest = [a for a in get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            optional, hint = True, rest[0]
    origin, args = get_origin(hint), get_args(hint)
    env_name = _ENV_NAMES.get(name, "OUTREACH_" + name.upper())
    kind = None
    choices: tuple[str, ...] = _CHOICES.get(name, ())
    if origin is Literal and all(isinstance(a, str) for a in args):
        kind, choices = "choice", tuple(args)
    elif choices and hint is str:
        kind = "choice"
    elif hint in (str, int, float, bool):
        kind = hint.__name__
    elif hint is Path:
        kind = "path"
    elif origin is tuple and args == (str, Ellipsis):
        kind = "strings"
    elif origin in (Mapping, dict) and args == (str, str):
        kind = "table"
    if kind is None:
        raise TypeError(f"Settings.{name}: no check for the type {hint!r}; add one to outreach.core.settings")
    return _Field(name, kind, optional, env_name, choices)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings) if f.default is not dataclasses.MISSING}
_FIELDS = {f.name: _field_spec(f.name, _HINTS[f.name]) for f in dataclasses.fields(Settings)}


class _BadValue(ValueError):
    """A value that does not fit its field; the message says what was expected and what was found."""


class _Raw(str):
    """An environment variable's text, shown in Python's (and the shell's) quotes."""


def _show(value: Any) -> str:
    """A value as the file (or, for a `_Raw` one, the environment) spelled it, shortened."""
    if isinstance(value, _Raw):
        text = repr(str(value))
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    elif isinstance(value, dict):
        return "a table"
    elif isinstance(value, datetime):
        return f"the date-time {value.isoformat()}"
    elif isinstance(value, date):
        return f"the date {value.isoformat()}"
    elif isinstance(value, time):
        return f"the time {value.isoformat()}"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(spec: _Field, value: Any, what: str | None = None) -> _BadValue:
    return _BadValue(f"expected {what or spec.expected}, got {_show(value)}")


# -- the file ------------------------------------------------------------------------------------------------


def _read_toml(path: Path, shown: str) -> tuple[dict[str, Any], dict[str, int], list[Problem]]:
    """The file's settings, converted to their fields' types, the line each is written on, and every problem
    found in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror
        return {}, {}, [Problem(shown, None, None, f"cannot read the config file: {reason}")]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, col = (int(match.group(1)), int(match.group(2))) if match else (None, None)
        return {}, {}, [Problem(shown, line, col, str(exc).split(" (at line")[0])]
    positions = key_positions(text)
    # a table's line is its `[header]` (or its first `name.key =` line)
    lines = {keys[0]: place[0] for keys, place in positions.items() if len(keys) == 1}

    def problem(keys: tuple[str, ...], message: str, *, at_value: bool = True) -> Problem:
        line, col = locate(positions, keys, at_value)
        return Problem(shown, line, col, message)

    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in data.items():
        spec = _FIELDS.get(key)
        if spec is None:
            problems.append(problem((key,), _unknown(key), at_value=False))
        elif key in _SECRETS:
            message = f"{key} is a secret: set it in the environment ({spec.env_name}), not in a file"
            problems.append(problem((key,), message, at_value=False))
        elif key in _URLS_WITH_CREDENTIALS and isinstance(value, str) and url_password(value):
            message = f"{key} holds a password: set it in the environment ({spec.env_name}) instead"
            problems.append(problem((key,), message))
        elif spec.kind == "table" and isinstance(value, dict):
            bad = [(k, v) for k, v in value.items() if not isinstance(v, str)]
            for k, v in bad:
                problems.append(problem((key, k), f"{key}.{k}: expected a string, got {_show(v)}"))
            if not bad:
                values[key] = dict(value)
        else:
            try:
                values[key] = _from_toml(spec, value)
            except _BadValue as exc:
                # a URL that may hold a password is not repeated
                shown_exc = f"expected {spec.expected}" if key in _URLS_WITH_CREDENTIALS else str(exc)
                problems.append(problem((key,), f"{key}: {shown_exc}"))
    return values, lines, problems


def _unknown(key: str) -> str:
    names = list(_FIELDS)
    normal = key.lower().removeprefix("outreach_")
    env_named = {spec.env_name.lower(): name for name, spec in _FIELDS.items()}
    normal = env_named.get(key.lower(), normal)
    if normal in _SECRETS:
        return f"unknown setting {key!r}: {normal} is a secret, set it in the environment ({_FIELDS[normal].env_name})"
    close = [normal] if normal in _FIELDS else difflib.get_close_matches(normal, names, n=1)
    return f"unknown setting {key!r}" + (f" (did you mean {close[0]}?)" if close else "")


def _from_toml(spec: _Field, value: Any) -> Any:
    kind = spec.kind
    if kind in ("str", "choice"):
        if not isinstance(value, str) or (kind == "choice" and value not in spec.choices):
            raise _expected(spec, value)
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _expected(spec, value)
        return value
    if kind == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _expected(spec, value)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _expected(spec, value)
        return value
    if kind == "path":
        if not isinstance(value, str) or not value:
            raise _expected(spec, value)
        return Path(value)
    if kind == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _expected(spec, value)
        return tuple(value)
    # a table whose values are not all strings is reported value by value by the caller
    raise _expected(spec, value, 'a table of strings (a [section] of key = "text" lines)')


# -- the environment -----------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _from_env(spec: _Field, raw: str) -> Any:
    """A variable's value as its field's type; an empty variable unsets an optional setting."""
    kind = spec.kind
    if spec.optional and raw == "":
        return None
    if kind == "str":
        return raw
    if kind == "choice":
        if raw.strip() not in spec.choices:
            raise _expected(spec, _Raw(raw))
        return raw.strip()
    if kind == "strings":
        return tuple(c.strip() for c in raw.split(",") if c.strip())
    if kind == "table":
        return _table_from_env(spec, raw)
    if kind == "bool":
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise _expected(spec, _Raw(raw), "true or false (1/0, yes/no, on/off)")
        return word in _TRUE
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise _expected(spec, _Raw(raw)) from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise _expected(spec, _Raw(raw)) from None
    # a path
    if not raw.strip():
        raise _expected(spec, _Raw(raw), "a path")
    return Path(raw)


def _table_from_env(spec: _Field, raw: str) -> dict[str, str]:
    """`sms=100/s,email=500/s` -> {"sms": "100/s", "email": "500/s"}, or a JSON object of strings (for texts
    with commas: `{"en": "Reply STOP, or call us"}`). Rates are checked where they are used."""
    if raw.lstrip().startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise _BadValue(f"not a JSON object: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise _expected(spec, _Raw(raw), 'a JSON object of strings like {"en": "..."}')
        return data
    table: dict[str, str] = {}
    for pair in (p.strip() for p in raw.split(",")):
        if not pair:
            continue
        key, equals, value = pair.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise _BadValue(f"{pair!r}: write key=value pairs like sms=100/s,email=500/s (or a JSON object)")
        table[key.strip()] = value.strip()
    return table
