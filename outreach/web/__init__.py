"""`outreach serve`: the HTTP side of the engine (provider webhooks, unsubscribe pages)."""
