"""The Dramatiq side: the broker chosen by OUTREACH_BROKER_URL and thin actors calling into `outreach`."""
