"""The scale benchmark: `python -m bench.scale` (see __main__.py)."""
