"""`outreach serve`: the HTTP side of the engine (provider webhooks, unsubscribe pages), a Starlette app.

May import: every library package of outreach (core ... journeys) and `workers` (to hand rows to the
workers); never outreach.cli.
"""
