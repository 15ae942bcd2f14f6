"""`outreach scheduler`: fires scheduled campaigns, plans follow-up steps as they come due, and releases
deferred rows, from the campaign files in OUTREACH_CAMPAIGNS_DIR.

The decisions live in `SchedulerCore.tick(now)`, which is deterministic for a given `now`: what has been
done is in the database (the `schedules` watermarks, the ledger, the campaign runs), so a tick repeated
after a crash, or by a standby that took over, does nothing twice. APScheduler drives the ticks (its job
store in the project's database); a leader lock keeps a second scheduler on standby.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.campaigns.folder import CampaignFolder
from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Schedule
from outreach.core.durations import parse_duration
from outreach.core.settings import Settings
from outreach.delivery.campaign_control import inactive_campaigns
from outreach.delivery.deferred import release_due
from outreach.delivery.sweep import SweepReport, scheduled_sweep
from outreach.inbound.escalation import escalate_due
from outreach.inbound.triggers import answer_pending
from outreach.journeys.followups import plan_due_followups, plan_send_time_fallbacks
from outreach.planning.occurrences import due, occurrence_label, spec
from outreach.planning.planner import plan_campaign, record_run
from outreach.planning.queueing import Transport
from outreach.store.database import insert_ignoring_duplicates, utcnow
from outreach.store.schema import schedules

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    fired: list[tuple[str, str]] = field(default_factory=list)  # (campaign, occurrence)
    missed: list[tuple[str, str]] = field(default_factory=list)
    followups: int = 0  # rows planned
    fallbacks: int = 0  # rows planned on a fallback channel after the primary failed for good
    released: int = 0
    answered: int = 0  # auto-replies planned for messages the server's triggers did not get to
    escalated: int = 0  # conversations escalated to the service desk
    swept: SweepReport | None = None  # the sweep, on the ticks it ran (once a minute)


class SchedulerCore:
    def __init__(self, engine: Engine, settings: Settings, transport: Transport | None) -> None:
        self.engine = engine
        self.settings = settings
        self.transport = transport
        self.folder = CampaignFolder(engine, settings)
        self.last_sweep: datetime | None = None

    def reload(self) -> None:
        self.folder.reload()

    # --- one tick --------------------------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or utcnow()
        report = TickReport()
        self.reload()
        cancelled = inactive_campaigns(self.engine)
        for loaded in self.folder.loaded():
            if loaded.id in cancelled:
                continue
            try:
                if loaded.campaign.schedule is not None:
                    self._fire(loaded, loaded.campaign.schedule, now, report)
                for plan in plan_due_followups(self.engine, loaded, self.settings, now, self.transport):
                    report.followups += len(plan.row_ids)
                for plan in plan_send_time_fallbacks(self.engine, loaded, self.settings, now, self.transport):
                    report.fallbacks += len(plan.row_ids)
            except Exception:  # one campaign's trouble must not stop the others
                log.exception("campaign %s: tick failed; trying again next tick", loaded.id)
        report.answered = answer_pending(self.engine, self.folder.loaded(), self.settings, self.transport, now)
        report.escalated = len(escalate_due(self.engine, self.settings, self.transport, now))
        report.released = (
            release_due(self.engine, self.transport, now, self.settings.batch_size) if self.transport else 0
        )
        if self.transport is not None:
            report.swept = scheduled_sweep(self.engine, self.transport, self.settings, now, self.last_sweep)
            self.last_sweep = now if report.swept is not None else self.last_sweep
        return report

    def _fire(self, loaded: LoadedCampaign, schedule: Schedule, now: datetime, report: TickReport) -> None:
        current = spec(schedule)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(schedules).where(schedules.c.campaign_id == loaded.id)).first()
            if row is None or row.spec != current:
                # A new or changed schedule counts from now: it does not back-fill times before it was seen.
                values = {"spec": current, "watermark": now, "updated_at": now}
                if row is None:
                    conn.execute(insert_ignoring_duplicates(conn, schedules).values(campaign_id=loaded.id, **values))
                else:
                    conn.execute(schedules.update().where(schedules.c.campaign_id == loaded.id).values(**values))
                return
            watermark = row.watermark
        decision = due(schedule, watermark, now, parse_duration(self.settings.schedule_grace))
        for missed in decision.missed:
            self._record_missed(loaded, missed)
            report.missed.append((loaded.id, occurrence_label(missed)))
        if decision.run is not None:
            label = occurrence_label(decision.run)
            plan_campaign(
                self.engine, loaded, self.settings, label, dry_run=False, transport=self.transport,
                scheduled_for=decision.run,
            )  # fmt: skip
            report.fired.append((loaded.id, label))
            log.info("fired %s occurrence %s", loaded.id, label)
        with self.engine.begin() as conn:
            conn.execute(
                schedules.update()
                .where(schedules.c.campaign_id == loaded.id, schedules.c.watermark < decision.watermark)
                .values(watermark=decision.watermark, updated_at=now)
            )

    def _record_missed(self, loaded: LoadedCampaign, scheduled: datetime) -> None:
        label = occurrence_label(scheduled)
        log.warning(
            "%s occurrence %s was missed (the scheduler was not running then; more than %s ago): not sent",
            loaded.id, label, self.settings.schedule_grace,
        )  # fmt: skip
        with self.engine.begin() as conn:
            record_run(conn, loaded, label, "missed", scheduled)


def run_scheduler(settings: Settings, engine: Engine, transport: Transport, stop: threading.Event) -> int:
    """Wait for the leader lock, then tick every `scheduler_interval` seconds under APScheduler until `stop`
    is set or the lock is lost (exit status 1: a supervisor restarts us as a standby)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from outreach.journeys.leader import leader_lock, wait_for_leadership

    lock = leader_lock(engine)
    if not wait_for_leadership(lock, settings.scheduler_lock_ttl / 2, stop):
        return 0
    global _core
    _core = SchedulerCore(engine, settings, transport)
    lost = threading.Event()

    def guarded_tick() -> None:
        if not lock.held():
            log.error("lost the scheduler lock: stopping so that the other scheduler acts alone")
            lost.set()
            stop.set()
            return
        tick_job()

    global _guarded
    _guarded = guarded_tick
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone="UTC",
    )
    scheduler.add_job(
        "outreach.journeys.scheduler:guarded_tick_job",
        "interval",
        seconds=settings.scheduler_interval,
        id="outreach-tick",
        replace_existing=True,
        next_run_time=datetime.now().astimezone(),
    )
    scheduler.start()
    log.info("scheduler active: ticking every %gs over %s", settings.scheduler_interval, settings.campaigns_dir)
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        lock.release()
    return 1 if lost.is_set() else 0


# APScheduler keeps a reference to the job function in its job store: these module-level names are it.
_core: SchedulerCore | None = None
_guarded: object = None


def tick_job() -> None:
    assert _core is not None
    report = _core.tick()
    if (
        report.fired
        or report.missed
        or report.followups
        or report.fallbacks
        or report.released
        or (report.answered or report.escalated)
    ):
        log.info(
            "tick: fired %s, missed %s, follow-up rows %d, fallback rows %d, deferred rows released %d, "
            "late auto-replies %d, conversations escalated %d",
            report.fired, report.missed, report.followups, report.fallbacks, report.released,
            report.answered, report.escalated,
        )  # fmt: skip


def guarded_tick_job() -> None:
    assert callable(_guarded)
    _guarded()
