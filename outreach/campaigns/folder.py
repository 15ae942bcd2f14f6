"""The campaign files of OUTREACH_CAMPAIGNS_DIR as the long-running processes see them: `outreach scheduler`
(schedules, follow-ups) and `outreach serve` (inbound triggers) pick up new and changed files without a
restart. A file that stops validating keeps its last good version (the error is logged once per change); a
removed file's campaign stops.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from outreach.campaigns.loading import LoadedCampaign, find_campaign_files, load_campaign
from outreach.core.errors import InputError, Problem
from outreach.core.settings import Settings
from outreach.customers.profiles import attribute_catalog

log = logging.getLogger(__name__)


@dataclass
class _Watched:
    loaded: LoadedCampaign
    stamp: tuple[float, int]


class CampaignFolder:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.campaigns: dict[Path, _Watched] = {}
        self.failed: dict[Path, tuple[float, int]] = {}
        self.links_out: set[str] = set()  # files that are symbolic links out of the folder, logged once
        self.checked_at: float | None = None
        self._lock = threading.Lock()  # the web server's threads share one folder

    def loaded(self) -> list[LoadedCampaign]:
        return [w.loaded for w in self.campaigns.values()]

    def reload_every(self, seconds: float) -> None:
        """`reload()`, unless the folder was looked at less than `seconds` ago."""
        with self._lock:
            if self.checked_at is None or time.monotonic() - self.checked_at >= seconds:
                self.reload()

    def reload(self) -> None:
        """Pick up new, changed and removed campaign files."""
        self.checked_at = time.monotonic()
        folder = self.settings.campaigns_dir
        refused: list[Problem] = []
        paths = set(find_campaign_files([folder], refused)) if folder.exists() else set()
        for problem in refused:
            if problem.path not in self.links_out:
                log.error("%s", problem)
        self.links_out = {problem.path for problem in refused}
        for gone in set(self.campaigns) - paths:
            log.info("campaign file %s removed: campaign %s stopped", gone, self.campaigns.pop(gone).loaded.id)
        catalog = None
        for path in sorted(paths):
            try:
                stat = path.stat()
            except OSError:
                continue
            stamp = (stat.st_mtime, stat.st_size)
            known = self.campaigns.get(path)
            if (known is not None and known.stamp == stamp) or self.failed.get(path) == stamp:
                continue
            if catalog is None:
                with self.engine.connect() as conn:
                    catalog = attribute_catalog(conn)
            try:
                loaded = load_campaign(path, self.settings, catalog or None)
            except InputError as exc:
                self.failed[path] = stamp
                keeping = f"; keeping the version loaded before ({known.loaded.id})" if known else ""
                log.error("%s does not validate%s:\n%s", path, keeping, "\n".join(map(str, exc.problems)))
                continue
            self.failed.pop(path, None)
            self.campaigns[path] = _Watched(loaded, stamp)
            log.info("%s campaign %s from %s", "reloaded" if known else "loaded", loaded.id, path)
