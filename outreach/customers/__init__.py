"""Customers: import (CSV, JSON lines), profiles and their event timeline, consent per channel and purpose,
contact checks, addresses shared by several customers, provisional profiles, conversations, reply windows of
the social channels, unsubscribe links.

May import: outreach.core, outreach.channels, outreach.store.
"""
