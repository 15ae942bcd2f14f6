"""The webhook benchmark: `python -m bench.webhooks` (see __main__.py). `bench.webhooks:raw_app` is the raw
limit's app as uvicorn is given it."""

from bench.webhooks.raw import raw_app

__all__ = ["raw_app"]
