"""Whether a campaign's messages carry links customers must open (the unsubscribe link of marketing email,
`{{ unsubscribe_url }}` in any template), and a warning when those links point at a loopback address: with
`public_url` left at its default (http://127.0.0.1:8000) every such link is dead for the customer."""

from __future__ import annotations

from urllib.parse import urlsplit

from outreach.campaigns.loading import LoadedCampaign
from outreach.core.settings import Settings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def needs_public_links(loaded: LoadedCampaign) -> bool:
    campaign = loaded.campaign
    for step in campaign.steps:
        channels = {step.channel, *([step.fallback] if step.fallback else [])}
        if campaign.purpose == "marketing" and "email" in channels:
            return True
        every = [loaded.templates.get(step.id, {}), *loaded.variant_templates.get(step.id, {}).values()]
        for templates in every:
            for found in templates.values():
                if any("unsubscribe_url" in part.text for part in found.every_part()):
                    return True
    return False


def public_link_warning(loaded: LoadedCampaign, settings: Settings) -> str | None:
    host = urlsplit(settings.public_url).hostname or ""
    if (host not in LOOPBACK_HOSTS and not host.startswith("127.")) or not needs_public_links(loaded):
        return None
    return (
        f"campaign {loaded.id}'s messages carry unsubscribe links to {settings.public_url}, which customers "
        "cannot open: set OUTREACH_PUBLIC_URL (or public_url in config/outreach.toml) to the address where "
        "`outreach serve` is reached from outside"
    )
