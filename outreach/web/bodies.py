"""Reading request bodies safely: a size limit before anything is parsed, and strict form decoding."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request


class BadRequest(Exception):
    """The request cannot be taken; `status` is the HTTP answer (400, 413, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BadRequest(413) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BadRequest(413, f"request body over {limit} bytes")
        except ValueError:
            raise BadRequest(400, "bad Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as a dict; BadRequest(400) for anything else or for a
    malformed body. A name given twice keeps its last value."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if body and media_type != "application/x-www-form-urlencoded":
        raise BadRequest(400, "expected an application/x-www-form-urlencoded body")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "malformed form body") from None
    return dict(pairs)
