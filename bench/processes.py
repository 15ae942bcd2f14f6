"""The outreach processes a benchmark runs: `outreach worker`, `outreach serve` or its app in a thread, and the
OUTREACH_* settings they run with."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.report import log
from outreach.core.settings import Settings

BIN = Path(sys.executable).parent
WORKERS_LOG = "workers.log"
# Seconds a process gets to exit after SIGTERM before it is killed: workers finish the messages in hand first.
WORKERS_GRACE = 120.0
SERVER_GRACE = 60.0
SERVER_STARTUP = 60.0  # seconds a server gets to answer GET /healthz


# -- settings -----------------------------------------------------------------------------------------------


def base_settings(folder: Path, database_url: str) -> dict[str, str]:
    """The OUTREACH_* settings of every run: its store, a fresh secret key, and no configuration file."""
    return {
        # A path that does not exist: config/outreach.toml of the working tree must not interfere.
        "OUTREACH_CONFIG": str(folder / "no-config.toml"),
        "OUTREACH_DATABASE_URL": database_url,
        "OUTREACH_SECRET_KEY": secrets.token_urlsafe(32),
        # The benchmarks measure sending, at whatever hour they run.
        "OUTREACH_QUIET_HOURS": "",
    }


def broker_settings(redis_url: str, namespace: str) -> dict[str, str]:
    return {"OUTREACH_BROKER_URL": redis_url, "OUTREACH_BROKER_NAMESPACE": namespace}


def child_env(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its OUTREACH_* and TWILIO_* variables, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    env.update(variables)
    return env


def outreach_command(*args: str) -> list[str]:
    return [str(BIN / "outreach"), *args]


def listen_args(port: int, workers: int) -> list[str]:
    """The options `outreach serve` and uvicorn share: loopback, `port`, `workers` processes."""
    return ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- subprocesses -------------------------------------------------------------------------------------------


@dataclass
class Running:
    """A subprocess that writes to a log file of its own."""

    name: str  # "the workers", "the server": as messages name it
    proc: subprocess.Popen[bytes]
    log_path: Path
    grace: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no {self.log_path.name})"

    def check_running(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}:\n{self.tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then wait; kill only if that fails. The exit status, None when killed."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(self.grace)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop within {self.grace:.0f} s of SIGTERM: killing\n{self.tail()}")
            self.proc.kill()
            self.proc.wait()
            return None


def _start(name: str, command: list[str], variables: Mapping[str, str], log_path: Path, grace: float) -> Running:
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            command, env=child_env(variables), cwd=log_path.parent, stdout=out, stderr=subprocess.STDOUT
        )
    return Running(name, proc, log_path, grace)


@contextmanager
def outreach_workers(variables: Mapping[str, str], folder: Path, processes: int, threads: int) -> Iterator[Running]:
    """`outreach worker --processes P --threads T` in `folder` (output in workers.log) until the block ends."""
    command = outreach_command("worker", "--processes", str(processes), "--threads", str(threads))
    running = _start("the workers", command, variables, folder / WORKERS_LOG, WORKERS_GRACE)
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def server(
    command: list[str],
    variables: Mapping[str, str],
    base_url: str,
    log_path: Path,
    startup_timeout: float = SERVER_STARTUP,
) -> Iterator[Running]:
    """Run an HTTP server until the block ends: wait for GET /healthz first."""
    running = _start("the server", command, variables, log_path, SERVER_GRACE)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            running.check_running()
            try:
                with urllib.request.urlopen(base_url + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer on {base_url}/healthz after {startup_timeout:.0f} s:\n{running.tail()}")
            time.sleep(0.1)
        yield running
    finally:
        running.stop()


# -- in this process ----------------------------------------------------------------------------------------


@contextmanager
def app_in_thread(settings: Settings, port: int, startup_timeout: float) -> Iterator[None]:
    """`outreach serve`'s app, its auto-replies enqueued to the broker, under uvicorn in a thread of this
    process (as tests/web_server.py runs it)."""
    import uvicorn

    from outreach.web.app import broker_transport, create_app

    config = uvicorn.Config(
        create_app(settings, broker_transport(settings)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    app_server = uvicorn.Server(config)
    thread = threading.Thread(target=app_server.run, name="outreach-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not app_server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web app did not start")
            time.sleep(0.02)
        yield
    finally:
        app_server.should_exit = True
        thread.join(timeout=30)
