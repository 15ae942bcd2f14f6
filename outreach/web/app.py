"""The Starlette app behind `outreach serve`.

Stateless apart from its connection pool: several processes or hosts can run it behind a load balancer.
Delivery reports are committed in groups (see `group_commit`); everything else in a transaction per request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from outreach.campaigns.folder import CampaignFolder
from outreach.core.errors import InputError
from outreach.core.group_commit import GroupCommitter
from outreach.core.settings import Settings, load_settings
from outreach.customers.unsubscribe import signing_key
from outreach.inbound.provider_reports import apply_status_reports
from outreach.planning.queueing import Transport
from outreach.store.database import open_store
from outreach.web.bodies import BadRequest
from outreach.web.push_replay import push_nonces
from outreach.web.security_headers import SecurityHeaders
from outreach.web.state import AppState
from outreach.web.twilio_hooks import INBOUND_PATH, STATUS_PATH, inbound_message, status_callback
from outreach.web.unsubscribe_page import unsubscribe
from outreach.web.wechat_hooks import PATH as WECHAT_PATH
from outreach.web.wechat_hooks import plaintext_warning, replay_window, wechat

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


# Given the app's engine: the transport to the workers (None: none reachable) and how to close it.
TransportFactory = Callable[[Engine], tuple[Transport | None, Callable[[], None]]]


def create_app(settings: Settings, transport_factory: TransportFactory | None = None) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        window = replay_window(settings)  # a bad setting is refused before anything opens
        warning = plaintext_warning(settings)
        if warning:
            log.warning("%s", warning)
        # As many connections as the threadpool has threads (Starlette runs blocking work on 40), so that
        # requests never queue for a connection.
        engine = open_store(settings.database_url, pool_size=20, max_overflow=20)
        committer = GroupCommitter(partial(apply_status_reports, engine))
        await committer.start()
        transport, close_transport = (transport_factory or _no_transport)(engine)
        nonces = push_nonces(settings, engine)
        try:
            campaigns = CampaignFolder(engine, settings)
            app.state.outreach = AppState(
                settings, engine, signing_key(engine, settings), committer, campaigns, transport, nonces, window
            )
            yield
        finally:
            await committer.stop()
            close_transport()
            nonces.close()
            engine.dispose()

    routes = [
        Route(STATUS_PATH, status_callback, methods=["POST"]),
        Route(INBOUND_PATH, inbound_message, methods=["POST"]),
        Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
        Route(WECHAT_PATH, wechat, methods=["GET", "POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    # Outside Starlette's own error middleware, so that a 500 gets the headers too.
    return SecurityHeaders(Starlette(routes=routes, lifespan=lifespan, exception_handlers={BadRequest: bad_request}))


def _no_transport(engine: Engine) -> tuple[Transport | None, Callable[[], None]]:
    return None, lambda: None


def broker_transport(settings: Settings) -> TransportFactory:
    """The broker of OUTREACH_BROKER_URL, for the auto-replies of inbound triggers. With the in-process broker
    (stub://) this server delivers them itself; if the providers are not configured, answers are planned
    and wait in the ledger (`outreach sweep` enqueues them once the workers can send)."""

    def open_broker(engine: Engine) -> tuple[Transport | None, Callable[[], None]]:
        from workers.broker import running_workers

        # Entered here, left when the lifespan calls the returned close (stack.close), on shutdown.
        stack = contextlib.ExitStack()
        try:
            handle = stack.enter_context(running_workers(settings, engine))
        except InputError as exc:
            log.warning("auto-replies will wait in the ledger: the workers cannot be reached (%s)", exc)
            return None, lambda: None
        return handle.transport, stack.close

    return open_broker


def app_from_environment() -> ASGIApp:
    """The app as `outreach serve` runs it (an import string, so uvicorn can start several workers)."""
    settings = load_settings()
    return create_app(settings, broker_transport(settings))
