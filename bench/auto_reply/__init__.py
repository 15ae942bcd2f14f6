"""The auto-reply benchmark: `python -m bench.auto_reply` (see __main__.py)."""
