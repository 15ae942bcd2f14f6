"""The pipeline's raw phase: the campaign's own ledger rows built into messages by `render_email` exactly as a
worker builds them (timed on its own, in this one process), then sent by plain aiosmtplib (bench/raw_smtp.py)
over as many connections as the workers have threads: the limit of SMTP client + server on this machine."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from email.utils import parseaddr

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.data import CAMPAIGN_ID
from bench.raw_smtp import RawMail, measure_raw
from bench.report import Phase, log
from bench.smtp_sink import SmtpSink
from outreach.channels.base import OutgoingMessage
from outreach.channels.email_message import render_email
from outreach.core.settings import Settings
from outreach.delivery.batches import outgoing
from outreach.store.schema import deliveries

# Delivery ids of the raw phase's messages: far above any ledger id, so their Message-IDs never collide.
RAW_ID_BASE = 10**12


@dataclass
class RawRun:
    send: Phase  # the messages sent, first session start to last reply
    build: Phase  # render_email in this one process: what a worker pays per message on top of sending it
    connections: int
    message_bytes: int  # on average
    received: int  # by the SMTP server
    duplicates: int  # Message-IDs the SMTP server received more than once


def run_raw(engine: Engine, settings: Settings, sink: SmtpSink, processes: int, threads: int, count: int) -> RawRun:
    messages = raw_messages(engine, settings, count)
    log(f"building {count:,} messages with render_email ...")
    start = time.perf_counter()
    mails = wire_mails(messages, settings.email_from)
    build = Phase(len(mails), time.perf_counter() - start)
    log(f"raw aiosmtplib: {count:,} messages over {processes * threads} connections ...")
    before = sink.count()
    result = measure_raw("127.0.0.1", sink.port, mails, processes, threads)
    received = sink.count() - before
    return RawRun(
        send=Phase(result.messages, result.seconds),
        build=build,
        connections=result.connections,
        message_bytes=round(sum(len(m[2]) for m in mails) / len(mails)),
        received=received.messages,
        duplicates=received.duplicates,
    )


def raw_messages(engine: Engine, settings: Settings, count: int) -> list[OutgoingMessage]:
    """`count` messages as the workers get them (`outgoing`) from the campaign's own ledger rows, each with a
    delivery id and Message-ID of its own."""
    with engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.campaign_id == CAMPAIGN_ID)
                .order_by(deliveries.c.id)
                .limit(count)
            ).mappings()
        ]
    if not rows:
        raise RuntimeError("no ledger rows to build raw messages from")
    return [
        replace(outgoing(rows[i % len(rows)], settings), delivery_id=RAW_ID_BASE + i, message_id=None)
        for i in range(count)
    ]


def wire_mails(messages: list[OutgoingMessage], email_from: str) -> list[RawMail]:
    """The messages as SMTP sends them, built by `render_email` exactly as SmtpProvider builds them."""
    sender = parseaddr(email_from)[1]
    mails: list[RawMail] = []
    for message in messages:
        email = render_email(message, email_from)
        mails.append((sender, email.recipient, email.data))
    return mails
