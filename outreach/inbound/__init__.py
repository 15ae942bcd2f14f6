"""What comes back: provider delivery reports, inbound SMS/WhatsApp/WeChat messages, mail (bounces and replies)
and their filing, opt-out/opt-in/help keywords, survey answers, inbound-triggered campaigns, escalation of
complaints, an operator's reply.

May import: everything below it (core ... reports).
"""
