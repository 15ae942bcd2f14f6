"""`outreach serve`: the webhook and unsubscribe server."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from outreach.cli.common import reports_errors, settings, store


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (each with its own connections).")] = 1,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = False,
    graceful_timeout: Annotated[
        int, typer.Option(min=0, help="Seconds to finish requests in flight on SIGTERM / Ctrl-C.")
    ] = 10,
) -> None:
    """Serve Twilio's webhooks (status callbacks, inbound SMS and WhatsApp), WeChat's (/webhooks/wechat) and
    the unsubscribe pages, and answer inbound messages with the `trigger: inbound` campaigns of
    OUTREACH_CAMPAIGNS_DIR (through OUTREACH_BROKER_URL's workers).

    Point Twilio at OUTREACH_PUBLIC_URL + /webhooks/twilio/inbound (the number's messaging webhook); status
    callbacks are requested with every message sent. Several servers can run behind a load balancer.
    """
    import uvicorn

    from outreach.web.wechat_crypto import aes_key
    from outreach.web.wechat_hooks import replay_window

    cfg = settings()
    if cfg.wechat_aes_key:
        aes_key(cfg.wechat_aes_key)  # a malformed key is refused now, not on WeChat's first push
    replay_window(cfg)  # likewise a window that is not a duration
    store(cfg).dispose()  # create or upgrade the schema once, before the processes start
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "outreach.web.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        timeout_graceful_shutdown=graceful_timeout,
        log_level="info",
        server_header=False,
    )


@reports_errors
def scheduler() -> None:
    """Fire scheduled campaigns and due follow-up steps from OUTREACH_CAMPAIGNS_DIR, and release deferred
    messages when their quiet hours end. A second scheduler waits on standby and takes over within
    seconds if the first one dies."""
    import signal
    import threading

    from outreach.journeys.scheduler import run_scheduler
    from outreach.planning.quiet_hours import quiet_hours_warning
    from workers.broker import running_workers

    cfg = settings()
    engine = store(cfg)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    warning = quiet_hours_warning(cfg)
    if warning:
        logging.getLogger("outreach.scheduler").warning(warning)
    try:
        # stub://: this process delivers what it plans
        with running_workers(cfg, engine) as handle:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            status = run_scheduler(cfg, engine, handle.transport, stop)
    finally:
        engine.dispose()
    if status:
        raise typer.Exit(status)
