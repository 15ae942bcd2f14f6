"""The store: tables (schema), migrations, the engine and its clock, typed rows, the audit log, and the delivery
ledger, which owns every change of a delivery's status (`ledger.transitions`, `ledger.move`).

May import: outreach.core, outreach.channels (the outcome names a provider reports).
"""
