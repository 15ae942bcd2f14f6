"""Segment expressions: their syntax (a checked subset of Python expressions; nothing is ever evaluated) and
their compilation to SQL, the same on SQLite and PostgreSQL.

May import: outreach.core, outreach.store.
"""
