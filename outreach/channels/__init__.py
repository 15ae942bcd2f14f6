"""The providers, one module per vendor (SMTP email, Twilio SMS/WhatsApp, WeChat, the file outbox), and what
they all speak (`base`): a message in, a SendResult out. Vendor error codes are read here and only here, and
turned into the project's error codes and outcomes. Also the text facts of a channel (SMS encoding).

May import: outreach.core.

This module chooses the provider of each channel from the settings: real ones when configured, the file
outbox otherwise.
"""

from __future__ import annotations

from outreach.channels.base import CHANNELS, Provider
from outreach.core.errors import InputError, Problem
from outreach.core.settings import Settings

CHANNELS_WITH_PROVIDERS = CHANNELS
# OUTREACH_WHATSAPP_FROM=outbox: Twilio sends SMS, WhatsApp messages stay in the outbox, as asked.
KEEP_IN_OUTBOX = "outbox"


def make_provider(channel: str, settings: Settings) -> Provider:
    """The provider that carries `channel` under these settings (created per batch, in its event loop).

    Raises InputError when a provider is half configured (say, a Twilio account without a sender).
    """
    from outreach.channels.outbox import OutboxProvider

    if channel == "email" and settings.smtp_url:
        from outreach.channels.smtp import SmtpProvider

        return SmtpProvider(
            settings.smtp_url, settings.email_from, settings.smtp_timeout, return_path=settings.email_return_path
        )
    if channel == "sms" and (settings.twilio_account_sid or settings.twilio_auth_token):
        from outreach.channels.twilio_sms import TwilioSmsProvider

        return TwilioSmsProvider(settings)
    if channel == "whatsapp" and (settings.twilio_account_sid or settings.twilio_auth_token):
        if settings.whatsapp_from == KEEP_IN_OUTBOX:
            return OutboxProvider(settings.outbox_dir, settings.email_from)
        if not settings.whatsapp_from:
            # Twilio carries SMS for real now: WhatsApp in the outbox would look sent and reach no one.
            raise InputError.single(
                "OUTREACH_WHATSAPP_FROM",
                "not set: Twilio is configured, so WhatsApp messages need the bank's WhatsApp sender (a number "
                f"or a Messaging Service MG... id); set it to {KEEP_IN_OUTBOX!r} to keep WhatsApp messages in the "
                "outbox on purpose",
            )
        from outreach.channels.twilio_sms import TwilioSmsProvider

        return TwilioSmsProvider(settings, channel="whatsapp")
    if channel == "wechat" and (settings.wechat_app_id or settings.wechat_app_secret):
        from outreach.channels.wechat import WeChatProvider

        return WeChatProvider(settings)
    return OutboxProvider(settings.outbox_dir, settings.email_from)


def check_providers(settings: Settings) -> None:
    """Fail at start-up, not in the middle of a batch, when a provider's settings are incomplete or wrong."""
    from outreach.channels.email_message import ReturnPath

    problems: list[Problem] = []
    if settings.email_return_path:  # checked even while email goes to the outbox
        try:
            ReturnPath(settings.email_return_path)
        except InputError as exc:
            problems.extend(exc.problems)
    for channel in CHANNELS_WITH_PROVIDERS:
        try:
            make_provider(channel, settings)
        except InputError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
    if problems:
        raise InputError(problems)
