"""The WeChat API the workers send the auto-replies to: tests/wechat_server.py's loopback server, noting when
each reply arrived, so that a complaint's time from its POST to its reply can be measured."""

from __future__ import annotations

import time
from typing import Any

from tests.wechat_server import WeChatServer


class TimedWeChatServer(WeChatServer):
    """Notes when each accepted message arrived (time.perf_counter), by recipient openid."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, list[float]] = {}

    def _send(self, query: dict[str, str], raw: bytes) -> tuple[Any, dict[str, Any]]:
        body, payload = super()._send(query, raw)
        if payload.get("errcode") == 0 and isinstance(body, dict):
            now = time.perf_counter()
            with self.lock:
                self.arrivals.setdefault(str(body["touser"]), []).append(now)
        return body, payload

    def arrived(self) -> dict[str, list[float]]:
        with self.lock:
            return {k: list(v) for k, v in self.arrivals.items()}
