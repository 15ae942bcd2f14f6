"""What the complaints go through: `outreach serve`'s app with the WeChat webhook (under uvicorn in a thread of
this process, or `outreach serve` as a subprocess) and `outreach worker` processes that send the replies over
Redis to the loopback WeChat API; and the settings they all run with."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.auto_reply.campaign import CAMPAIGN_FILE
from bench.auto_reply.wechat_api import TimedWeChatServer
from bench.processes import (
    Running,
    app_in_thread,
    base_settings,
    broker_settings,
    listen_args,
    outreach_command,
    outreach_workers,
    server,
)
from outreach.core.settings import Settings

STARTUP_TIMEOUT = 120.0


def outreach_env(
    folder: Path,
    database_url: str,
    redis_url: str,
    namespace: str,
    wechat: TimedWeChatServer,
    token: str,
    public_url: str,
) -> dict[str, str]:
    """The OUTREACH_* settings of the app and the workers: the store, the broker namespace, the campaign
    alone in a campaigns folder of the run's own, and the WeChat account with its API on loopback."""
    campaigns_dir = folder / "campaigns"
    campaigns_dir.mkdir()
    shutil.copy(CAMPAIGN_FILE, campaigns_dir / CAMPAIGN_FILE.name)
    return {
        **base_settings(folder, database_url),
        **broker_settings(redis_url, namespace),
        "OUTREACH_CAMPAIGNS_DIR": str(campaigns_dir),
        "OUTREACH_TEMPLATES_DIR": str(folder / "templates"),
        "OUTREACH_OUTBOX_DIR": str(folder / "outbox"),
        "OUTREACH_PUBLIC_URL": public_url,
        "OUTREACH_WECHAT_APP_ID": wechat.app_id,
        "OUTREACH_WECHAT_APP_SECRET": wechat.app_secret,
        "OUTREACH_WECHAT_TOKEN": token,
        "OUTREACH_WECHAT_API_BASE": wechat.base_url + "/",
    }


@dataclass(frozen=True)
class Services:
    serve_pid: int | None  # None: the app runs in this process
    workers: Running


@contextmanager
def app_and_workers(
    where: str, settings: Settings, env: dict[str, str], port: int, folder: Path, processes: int, threads: int
) -> Iterator[Services]:
    """The app on `port` (`where`: "thread" or "process") and `outreach worker --processes P --threads T`, until
    the block ends."""
    with ExitStack() as stack:
        serve_pid: int | None = None
        if where == "thread":
            stack.enter_context(app_in_thread(settings, port, STARTUP_TIMEOUT))
        else:
            command = outreach_command("serve", *listen_args(port, 1))
            serve_pid = stack.enter_context(server(command, env, f"http://127.0.0.1:{port}", folder / "serve.log")).pid
        yield Services(serve_pid, stack.enter_context(outreach_workers(env, folder, processes, threads)))
