"""A marketer's or operator's folder: files written there and the real `outreach` command run in it on the
embedded default (SQLite in the folder, the in-process broker, the file outbox), as the README tells users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTREACH = str(Path(sys.executable).with_name("outreach"))


@dataclass
class Workdir:
    path: Path
    env: dict[str, str]

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return target

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OUTREACH, *args], cwd=self.path, env={**self.env, **env}, capture_output=True, text=True, timeout=180
        )

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, **env)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self.ok(*args, "--json", **env).stdout)

    def outbox(self, channel: str) -> list[dict[str, Any]]:
        """What the outbox provider wrote for `channel`, in the order written (SMS and social as JSON)."""
        folder = self.path / "outbox" / channel
        files = sorted(folder.glob("*.*"), key=lambda p: int(p.stem)) if folder.exists() else []
        if channel == "email":
            from email import message_from_bytes, policy

            return [{"message": message_from_bytes(f.read_bytes(), policy=policy.default)} for f in files]
        return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def workdir_at(path: Path, **env: str) -> Workdir:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    # quiet hours off: a test runs at any hour (those about quiet hours set them)
    base.update(
        OUTREACH_CONFIG=str(path / "none.toml"), OUTREACH_SECRET_KEY="workdir-test-key", OUTREACH_QUIET_HOURS=""
    )
    base.update(env)
    return Workdir(path, base)
