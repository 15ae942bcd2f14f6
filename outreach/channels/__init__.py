"""The providers, one module per vendor (SMTP email, Twilio SMS/WhatsApp, WeChat, the file outbox), and what
they all speak (`base`): a message in, a SendResult out. Vendor error codes are read here and only here, and
turned into the project's error codes and outcomes. Also the text facts of a channel (SMS encoding).

May import: outreach.core.
"""
