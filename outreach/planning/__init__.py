"""Planning: who gets which message on which channel, when, written to the ledger before anything is sent.
Steps, messages, frequency caps, quiet hours, variants, schedule occurrences, one customer's preview, the dry
run's recipient list, test sends, and the hand-off of ledger ids to whatever delivers them (`queueing`).

May import: everything below it (core, channels, store, customers, segments, campaigns).
"""
