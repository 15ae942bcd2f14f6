"""`outreach serve` as an operator starts it: a process that answers, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.services import free_port

OUTREACH = str(Path(sys.executable).with_name("outreach"))


def test_serve_answers_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path / 'outreach.db'}",
        "OUTREACH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "OUTREACH_CONFIG": str(tmp_path / "missing.toml"),
        "TWILIO_AUTH_TOKEN": "a-secret-token-value",
    }
    proc = subprocess.Popen(
        [OUTREACH, "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "outreach serve did not start"
                time.sleep(0.2)
        assert (answer.status_code, answer.text) == (200, "ok")
        forged = requests.post(
            f"http://127.0.0.1:{port}/webhooks/twilio/status",
            data={"MessageSid": "SM1", "MessageStatus": "delivered"},
            headers={"X-Twilio-Signature": "forged"},
            timeout=5,
        )
        assert forged.status_code == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    # uvicorn finishes the shutdown, then re-raises the signal so that the exit status says SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "a-secret-token-value" not in output


def test_serve_refuses_a_malformed_safe_mode_key_without_printing_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path / 'outreach.db'}",
        "OUTREACH_CONFIG": str(tmp_path / "missing.toml"),
        "OUTREACH_WECHAT_AES_KEY": "not-a-key-but-secret-anyway",
    }
    done = subprocess.run(
        [OUTREACH, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "OUTREACH_WECHAT_AES_KEY: expected the 43 characters" in done.stderr
    assert "not-a-key-but-secret-anyway" not in done.stdout + done.stderr
    assert not (tmp_path / "outreach.db").exists()  # refused before anything was created


def test_serve_refuses_a_replay_window_that_is_not_a_duration(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path / 'outreach.db'}",
        "OUTREACH_CONFIG": str(tmp_path / "missing.toml"),
        "OUTREACH_WECHAT_REPLAY_WINDOW": "five minutes",
    }
    done = subprocess.run(
        [OUTREACH, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "wechat_replay_window: 'five minutes' is not a duration like 30m" in done.stderr
    assert not (tmp_path / "outreach.db").exists()  # refused before anything was created
