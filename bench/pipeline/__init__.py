"""The pipeline benchmark: `python -m bench.pipeline` (see __main__.py)."""
