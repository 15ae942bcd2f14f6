"""The embedded default provider: every message becomes one file in the outbox folder instead of leaving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from outreach.channels.base import NO_HOOKS, OutgoingMessage, SendHooks, SendResult
from outreach.channels.email_message import InvalidAddress, render_email
from outreach.core.errors import AddressInvalid, PermanentError, TransientError

_CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")


class OutboxProvider:
    """Writes email as `{outbox}/email/{delivery_id}.eml` (the MIME that SMTP would carry) and any other
    channel as `{outbox}/{channel}/{delivery_id}.json`.

    A file appears whole or not at all (written aside, then renamed into place), and sending the same
    delivery again replaces its file, so a retry never leaves two.
    """

    name = "outbox"

    def __init__(self, outbox_dir: Path | str, email_from: str) -> None:
        self._outbox = Path(outbox_dir)
        self._email_from = email_from

    def path_for(self, message: OutgoingMessage) -> Path:
        suffix = "eml" if message.channel == "email" else "json"
        return self._outbox / message.channel / f"{message.delivery_id}.{suffix}"

    async def send_many(self, messages: Sequence[OutgoingMessage], hooks: SendHooks = NO_HOOKS) -> list[SendResult]:
        results: list[SendResult] = []
        for message in messages:
            if not await hooks.before(message):
                continue
            # Files are small; the event loop's threads write them, so the loop stays free.
            result = await asyncio.to_thread(self._write, message)
            results.append(result)
            hooks.after(result)
        return results

    def _write(self, message: OutgoingMessage) -> SendResult:
        if not _CHANNEL_NAME.fullmatch(message.channel):
            # The channel names a folder: never let it climb out of the outbox.
            return SendResult.failed(
                message, PermanentError(f"channel {message.channel!r} cannot name an outbox folder")
            )
        try:
            content = self._content(message)
        except InvalidAddress as exc:
            return SendResult.failed(message, AddressInvalid(str(exc)))
        except ValueError as exc:
            return SendResult.failed(message, PermanentError(str(exc)))
        path = self.path_for(message)
        try:
            _write_atomically(path, content)
        except OSError as exc:
            return SendResult.failed(message, TransientError(f"cannot write {path}: {exc.strerror or exc}"))
        return SendResult.sent(message, str(path))

    def _content(self, message: OutgoingMessage) -> bytes:
        if message.channel == "email":
            return render_email(message, self._email_from).data
        record = {
            "delivery_id": message.delivery_id,
            "customer_id": message.customer_id,
            "to": message.to,
            "body": message.body,
        }
        return (json.dumps(record, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _write_atomically(path: Path, content: bytes) -> None:
    """Write to a hidden temporary file in the same folder, then rename it over `path` (atomic on POSIX and
    Windows), so a reader sees the old file or the new one, never part of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
