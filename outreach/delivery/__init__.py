"""Delivery: a batch of ledger rows claimed, checked again (consent, caps, windows), paced by throttles, sent
through the providers and recorded; the sweep that recovers what a broker or a dead worker lost; deferred
rows; failures, replay; pausing, resuming and cancelling a campaign.

May import: everything below it (core ... planning).
"""
