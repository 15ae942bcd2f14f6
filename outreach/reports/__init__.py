"""Reports read from the ledger: a campaign's funnel, A/B variants, where one run stands, and exports for
regulators and BI tools. They never change a row.

May import: everything below it (core ... delivery).
"""
