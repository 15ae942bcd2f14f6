"""The Starlette app behind `outreach serve`.

Stateless apart from its connection pool: several processes or hosts can run it behind a load balancer.
Delivery reports are committed in groups (see `group_commit`); everything else in a transaction per request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from outreach.config import Settings, load_settings
from outreach.db import open_store
from outreach.group_commit import GroupCommitter
from outreach.status_reports import apply_status_reports
from outreach.unsubscribe import signing_key
from outreach.web.bodies import BadRequest
from outreach.web.state import AppState
from outreach.web.twilio_hooks import INBOUND_PATH, STATUS_PATH, inbound_message, status_callback
from outreach.web.unsubscribe_page import unsubscribe
from outreach.web.wechat_hooks import PATH as WECHAT_PATH
from outreach.web.wechat_hooks import wechat

log = logging.getLogger(__name__)


async def health(request: Request) -> Response:
    state: AppState = request.app.state.outreach

    def ping() -> None:
        with state.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    await run_in_threadpool(ping)
    return PlainTextResponse("ok")


async def bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    if exc.status == 403:
        log.warning("refused %s %s: %s", request.method, request.url.path, exc.message)
    return PlainTextResponse(exc.message + "\n", status_code=exc.status)


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # As many connections as the threadpool has threads (Starlette runs blocking work on 40), so that
        # requests never queue for a connection.
        engine = open_store(settings.database_url, pool_size=20, max_overflow=20)
        committer = GroupCommitter(partial(apply_status_reports, engine))
        await committer.start()
        app.state.outreach = AppState(settings, engine, signing_key(engine, settings), committer)
        try:
            yield
        finally:
            await committer.stop()
            engine.dispose()

    routes = [
        Route(STATUS_PATH, status_callback, methods=["POST"]),
        Route(INBOUND_PATH, inbound_message, methods=["POST"]),
        Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
        Route(WECHAT_PATH, wechat, methods=["GET", "POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={BadRequest: bad_request})


def app_from_environment() -> Starlette:
    """The app as `outreach serve` runs it (an import string, so uvicorn can start several workers)."""
    return create_app(load_settings())
