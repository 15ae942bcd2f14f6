"""What the complaints led to, read once the workers are done: each complaint's replies counted and timed from
its first POST, their texts compared with the campaign's, the ledger and the inbound messages counted; then
what must hold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.auto_reply.campaign import CAMPAIGN_ID
from bench.auto_reply.figures import Figures
from bench.auto_reply.pushes import Push, Pushes
from bench.auto_reply.wechat_api import TimedWeChatServer
from bench.http_load import Answer
from bench.report import Latencies
from outreach.store.schema import deliveries, inbound_messages


def record_replies(
    figures: Figures,
    sent: list[Answer[Push]],
    pushes: Pushes,
    wechat: TimedWeChatServer,
    reply_for: Callable[[str], str],
    name_of: dict[str, str],
) -> None:
    arrived = wechat.arrived()
    first_post: dict[str, float] = {}
    for a in sent:
        first_post[a.post.openid] = min(first_post.get(a.post.openid, a.started), a.started)
    figures.redeliveries = Latencies.of([a.seconds for a in sent if a.post.redelivery])
    reply_latencies, counts, last = [], Counter[int](), 0.0
    for openid in pushes.complainers:
        times = arrived.get(openid, [])
        counts[len(times)] += 1
        if times:
            reply_latencies.append(times[0] - first_post[openid])
            last = max(last, times[0])
    figures.reply = Latencies.of(reply_latencies)
    figures.replies = len(reply_latencies)
    figures.replies_seconds = last - min(first_post.values()) if reply_latencies else 0.0
    figures.reply_counts = dict(sorted(counts.items()))
    wanted = set(pushes.complainers)
    figures.wrong_content = sum(
        1 for m in wechat.accepted() if m["touser"] in wanted and m["content"] != reply_for(name_of[m["touser"]])
    )
    figures.plain_replied = sum(1 for p in pushes.warm_plain + pushes.plain if arrived.get(p.openid))


def record_store(figures: Figures, engine: Engine) -> None:
    with engine.connect() as conn:
        figures.ledger = {
            str(status): int(n)
            for status, n in conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.campaign_id == CAMPAIGN_ID)
                .group_by(deliveries.c.status)
            )
        }
        figures.inbound_rows = conn.execute(sa.select(sa.func.count()).select_from(inbound_messages)).scalar_one()


def check(f: Figures, acks: int) -> None:
    """Note a problem unless every answer was "success", every complaint had exactly one reply with the
    campaign's text, no plain push had one, and the ledger and inbound messages hold what they must."""
    p = f.problems
    for name, posted in (("plain pushes", f.plain), ("complaints", f.complaints)):
        if posted is not None and set(posted.answers) != {"200 success"}:
            p.append(f"{name}: answers {posted.answers}")
    if set(f.reply_counts) != {1}:
        p.append(f"replies per complaint (replies: complaints): {f.reply_counts}")
    if f.wrong_content:
        p.append(f"{f.wrong_content:,} replies with a text other than the campaign's")
    if f.plain_replied:
        p.append(f"{f.plain_replied:,} plain pushes got a reply")
    if f.ledger != {"sent": acks}:
        p.append(f"complaint-ack ledger rows {f.ledger}, expected {{'sent': {acks}}}")
    if f.inbound_rows != f.expected_inbound_rows:
        p.append(f"{f.inbound_rows:,} inbound messages filed, expected {f.expected_inbound_rows:,}")
