"""Running the `outreach` command as a user does, in a subprocess, with a test's settings in its environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from outreach.core.settings import Settings

OUTREACH = str(Path(sys.executable).with_name("outreach"))


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a command `settings`' store, broker, SMTP server, outbox and spill folder
    (no config file), plus `extra` variables."""
    env = dict(os.environ)
    env.update(
        OUTREACH_CONFIG=str(Path(settings.outbox_dir).parent / "no-config.toml"),
        OUTREACH_DATABASE_URL=settings.database_url,
        OUTREACH_BROKER_URL=settings.broker_url,
        OUTREACH_BROKER_NAMESPACE=settings.broker_namespace,
        OUTREACH_SMTP_URL=settings.smtp_url or "",
        OUTREACH_OUTBOX_DIR=str(settings.outbox_dir),
        OUTREACH_SPILL_DIR=str(settings.spill_dir),
        OUTREACH_RECORD_RETRY_SECONDS=str(settings.record_retry_seconds),
        OUTREACH_SECRET_KEY=settings.secret_key or "",
        OUTREACH_RETRY_BACKOFF=str(settings.retry_backoff),
        OUTREACH_RETRY_BACKOFF_MAX=str(settings.retry_backoff_max),
        OUTREACH_BATCH_SIZE=str(settings.batch_size),
        OUTREACH_QUIET_HOURS=settings.quiet_hours,
    )
    env.update(extra)
    return env


def twilio_environment(settings: Settings) -> dict[str, str]:
    """The variables that point a command's Twilio provider where `settings` point it."""
    return {
        "TWILIO_ACCOUNT_SID": settings.twilio_account_sid or "",
        "TWILIO_AUTH_TOKEN": settings.twilio_auth_token or "",
        "OUTREACH_TWILIO_API_BASE": settings.twilio_api_base,
        "OUTREACH_SMS_FROM": settings.sms_from or "",
        "OUTREACH_WHATSAPP_FROM": settings.whatsapp_from or "outbox",
    }
