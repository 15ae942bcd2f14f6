"""The raw limit of the webhooks: what `outreach serve` does per Twilio request minus the database, and how
uvicorn serves it (`bench.webhooks:raw_app --factory`, as many workers as the real server)."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from bench.processes import BIN
from outreach.web.bodies import BadRequest, parse_form, read_body
from outreach.web.twilio_hooks import INBOUND_PATH, STATUS_PATH

TWIML_MEDIA_TYPE = "application/xml"
ROOT = Path(__file__).resolve().parents[2]


def raw_command(listen: list[str]) -> list[str]:
    """uvicorn serving the raw app on `listen` (bench.processes.listen_args), without access log."""
    quiet = ["--no-access-log", "--log-level", "warning", "--no-server-header"]
    return [str(BIN / "python"), "-m", "uvicorn", "bench.webhooks:raw_app", "--factory", *listen, *quiet]


def raw_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with this working tree on PYTHONPATH, where uvicorn finds `bench`."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def raw_app() -> Starlette:
    """Read the body with the same limit, parse the form, check the signature over OUTREACH_PUBLIC_URL + path +
    query, answer like the real routes."""
    token = os.environ["TWILIO_AUTH_TOKEN"]
    public_url = os.environ["OUTREACH_PUBLIC_URL"].rstrip("/")
    limit = 65536

    async def signed(request: Request) -> dict[str, str]:
        body = await read_body(request, limit)
        form = parse_form(body, request.headers.get("content-type"))
        signature = request.headers.get("x-twilio-signature")
        url = public_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        if not signature or not RequestValidator(token).validate(url, form, signature):
            raise BadRequest(403, "invalid X-Twilio-Signature")
        return form

    async def status(request: Request) -> Response:
        form = await signed(request)
        if not form.get("MessageSid") or not form.get("MessageStatus"):
            raise BadRequest(400, "missing MessageSid")
        return PlainTextResponse("applied")

    async def inbound(request: Request) -> Response:
        form = await signed(request)
        if not form.get("MessageSid") or not form.get("From"):
            raise BadRequest(400, "missing MessageSid")
        return Response('<?xml version="1.0" encoding="UTF-8"?><Response />', media_type=TWIML_MEDIA_TYPE)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        return PlainTextResponse(exc.message + "\n", status_code=exc.status)

    routes = [
        Route(STATUS_PATH, status, methods=["POST"]),
        Route(INBOUND_PATH, inbound, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={BadRequest: bad_request})
