"""Omnichannel outreach engine: campaigns in YAML, a delivery ledger, Dramatiq workers."""

__version__ = "0.1.0"
