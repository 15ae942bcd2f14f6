"""Entry point for `dramatiq workers.main` (what `outreach worker` runs): settings from the environment."""

from outreach.core.settings import load_settings
from workers.broker import setup

handle = setup(load_settings())
broker = handle.broker
