"""Settings: defaults in code, `config/outreach.toml` over them, `OUTREACH_*` environment variables over both.

Secrets (auth tokens, the signing key, passwords inside URLs) are read from the environment only and are
never printed: `masked()` gives a copy safe for logs and errors.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from outreach.core.errors import InputError, Problem

CONFIG_ENV = "OUTREACH_CONFIG"
DEFAULT_CONFIG_PATH = Path("config") / "outreach.toml"

# Settings whose environment variable is not OUTREACH_<NAME>.
_ENV_NAMES = {
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
}
_SECRETS = {"twilio_auth_token", "secret_key", "wechat_app_secret", "wechat_token", "wechat_aes_key"}
_URLS_WITH_CREDENTIALS = {"database_url", "broker_url", "smtp_url"}


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

    # Quiet hours ("21:00-08:00", in each customer's time zone) for every campaign that sets none of its own
    # ("" = none); a service campaign may opt out with `quiet_hours: off`. Customers without a time zone use
    # the campaign's schedule zone, else default_timezone. Marketing also waits out the holidays listed in
    # holidays_file for the customer's country.
    quiet_hours: str = ""
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


def mask_url(url: str) -> str:
    """`smtp://user:secret@host` -> `smtp://user:***@host`; anything else unchanged (never raises)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def mask_secrets(text: str, settings: Settings) -> str:
    """Remove every secret value of `settings` from `text` (for provider error messages)."""
    secrets: list[str] = [getattr(settings, name) for name in sorted(_SECRETS) if getattr(settings, name)]
    for name in _URLS_WITH_CREDENTIALS:
        value = getattr(settings, name)
        if isinstance(value, str):
            password = urlsplit(value).password
            if password:
                secrets.append(password)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def load_settings(env: Mapping[str, str] | None = None, path: Path | None = None) -> Settings:
    """Read the config file (if there is one) and the environment into Settings."""
    env = os.environ if env is None else env
    if path is None:
        path = Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else DEFAULT_CONFIG_PATH
    values: dict[str, Any] = {}
    if path.exists():
        values.update(_read_toml(path))
    for f in dataclasses.fields(Settings):
        name = _ENV_NAMES.get(f.name, "OUTREACH_" + f.name.upper())
        if name in env:
            values[f.name] = _from_env(f.name, env[name], name)
    return Settings(**{k: _coerce(k, v) for k, v in values.items()})


_FIELD_TYPES = {f.name: f for f in dataclasses.fields(Settings)}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, col = (int(match.group(1)), int(match.group(2))) if match else (None, None)
        raise InputError.single(str(path), str(exc).split(" (at line")[0], line, col) from None
    problems = []
    for key, value in data.items():
        if key not in _FIELD_TYPES:
            problems.append(Problem(str(path), None, None, f"unknown setting {key!r}"))
        elif key in _SECRETS:
            problems.append(
                Problem(str(path), None, None, f"{key} is a secret: set it in the environment, not in a file")
            )
        elif key in _URLS_WITH_CREDENTIALS and isinstance(value, str) and urlsplit(value).password:
            problems.append(
                Problem(str(path), None, None, f"{key} holds a password: set it in the environment instead")
            )
    if problems:
        raise InputError(problems)
    return data


def _from_env(key: str, raw: str, env_name: str) -> Any:
    default = _FIELD_TYPES[key].default
    if isinstance(default, tuple):
        return tuple(c.strip() for c in raw.split(",") if c.strip())
    if key == "provider_rates":
        return _rates_from_env(raw, env_name)
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise InputError.single(env_name, f"expected an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise InputError.single(env_name, f"expected a number, got {raw!r}") from None
    return raw or None


def _coerce(key: str, value: Any) -> Any:
    default = _FIELD_TYPES[key].default
    if isinstance(default, Path) and value is not None:
        return Path(value)
    if isinstance(default, tuple):
        return tuple(value)
    if key == "provider_rates":
        return dict(value or {})
    return value


def _rates_from_env(raw: str, env_name: str) -> dict[str, str]:
    """`sms=100/s,email=500/s` -> {"sms": "100/s", "email": "500/s"} (the rates are checked where used)."""
    rates: dict[str, str] = {}
    for pair in (p.strip() for p in raw.split(",")):
        if not pair:
            continue
        channel, equals, rate = pair.partition("=")
        if not equals or not channel.strip() or not rate.strip():
            raise InputError.single(env_name, f"{pair!r}: write channel=rate pairs like sms=100/s,email=500/s")
        rates[channel.strip()] = rate.strip()
    return rates
