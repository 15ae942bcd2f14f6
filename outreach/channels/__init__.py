"""Providers by channel, chosen from the settings: real ones when configured, the file outbox otherwise."""

from __future__ import annotations

from outreach.channels.base import Provider
from outreach.config import Settings


def make_provider(channel: str, settings: Settings) -> Provider:
    """The provider that carries `channel` under these settings (created per batch, in its event loop)."""
    from outreach.channels.outbox import OutboxProvider

    if channel == "email" and settings.smtp_url:
        from outreach.channels.smtp import SmtpProvider

        return SmtpProvider(settings.smtp_url, settings.email_from, settings.smtp_timeout)
    if channel == "sms" and settings.twilio_account_sid and settings.twilio_auth_token:
        from outreach.channels.twilio_sms import TwilioSmsProvider

        return TwilioSmsProvider(settings)
    return OutboxProvider(settings.outbox_dir, settings.email_from)
