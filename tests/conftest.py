"""Fixtures: the store on SQLite and PostgreSQL, a Redis for the broker, a real SMTP server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.core.settings import Settings
from outreach.store.database import make_engine, open_store, shift_clock
from tests.services import free_port, postgres_database, redis_server, unavailable
from tests.smtp_server import SmtpServer

# The suite runs at any hour: quiet hours (on by default for marketing and surveys) would defer whatever a
# test plans at night. The tests of quiet hours set their own; commands run with this environment inherit it.
os.environ["OUTREACH_QUIET_HOURS"] = ""


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str | None]:
    with redis_server() as url:
        yield url
        if url is not None:
            # A worker process stopping after its test's cleanup can still write its heartbeat: remove every
            # key the run's namespaces left behind (they all start with outreach-test-).
            import redis

            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter("outreach-test-*"))
            if keys:
                client.delete(*keys)
            client.close()


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str | None) -> str:
    """An empty store, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outreach.db'}"
    if postgres_url is None:
        unavailable("PostgreSQL", "no server at the test URL")
    assert postgres_url is not None
    _reset_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outreach.db'}"


@pytest.fixture
def redis_url(redis_base_url: str | None) -> Iterator[str]:
    """Redis for one test; the broker namespace keeps its keys apart and they are removed afterwards."""
    if redis_base_url is None:
        unavailable("Redis", "no server and no redis-server binary")
    assert redis_base_url is not None
    yield redis_base_url


@pytest.fixture
def broker_namespace(redis_url: str) -> Iterator[str]:
    import redis

    namespace = f"outreach-test-{uuid.uuid4().hex[:10]}"
    yield namespace
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{namespace}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test: everything local to its temporary folder unless overridden."""

    def build(database_url: str, **overrides: Any) -> Settings:
        base = Settings(
            database_url=database_url,
            broker_url="stub://",
            templates_dir=tmp_path / "templates",
            campaigns_dir=tmp_path / "campaigns",
            outbox_dir=tmp_path / "outbox",
            spill_dir=tmp_path / "spill",
            secret_key="test-secret-key",
            retry_backoff=0.05,
            retry_backoff_max=0.2,
            quiet_hours="",  # see OUTREACH_QUIET_HOURS above
        )
        return replace(base, **overrides)

    return build


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def twilio_server() -> Iterator[Any]:
    from tests.twilio_server import TwilioServer

    with TwilioServer() as server:
        yield server


@pytest.fixture
def clock() -> Iterator[None]:
    """For a test that moves the engine's clock (`shift_clock`, `tests.pipeline.later`): set back after it."""
    yield
    shift_clock(timedelta(0))


@pytest.fixture
def pipeline_overrides() -> dict[str, Any]:
    """Settings a test module adds to its pipeline's (override this fixture in the module)."""
    return {}


@pytest.fixture
def pipeline(
    store_url: str,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    twilio_server: Any,
    tmp_path: Path,
    pipeline_overrides: dict[str, Any],
) -> Iterator[Any]:
    """The engine wired to a real SMTP server and the Twilio-like server, in-process broker, on both stores."""
    from tests.pipeline import Pipeline
    from workers.broker import running_workers

    settings = make_settings(
        store_url,
        smtp_url=smtp_server.url,
        twilio_account_sid=twilio_server.account_sid,
        twilio_auth_token=twilio_server.auth_token,
        twilio_api_base=twilio_server.base_url,
        sms_from="+15005550006",
        list_columns=("products",),
        public_url=f"http://127.0.0.1:{free_port()}",
        **{"whatsapp_from": "outbox", **pipeline_overrides},  # WhatsApp in the outbox unless a module says
    )
    engine = open_store(store_url)
    folder = tmp_path / "work"
    folder.mkdir()
    with running_workers(settings, engine, start=False) as handle:
        yield Pipeline(settings, engine, handle, folder)
    engine.dispose()


@pytest.fixture
def web(pipeline: Any) -> Iterator[Any]:
    """`outreach serve`'s app on the pipeline's public URL (uvicorn on loopback), sharing its store."""
    from tests.web_server import WebServer

    with WebServer(pipeline.settings) as server:
        yield server


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, for one test: Playwright's sync API runs an event loop in this
    thread while it is open, which would break later tests that call asyncio.run()."""
    from tests.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture
def desk(tmp_path: Path) -> Any:
    """A folder where the real `outreach` command runs on the embedded default (see tests/workdir.py)."""
    from tests.workdir import workdir_at

    return workdir_at(tmp_path)
