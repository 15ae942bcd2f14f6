"""Operator commands that change what the engine does: pause, resume and cancel a campaign, set a consent by
hand, and the audit log of all of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from outreach.cli.common import console, print_json, print_table, reports_errors, settings, store
from outreach.core.errors import InputError, Problem
from outreach.store import audit

By = Annotated[str | None, typer.Option("--by", help="Who does this (default: the OS user).")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")]
CampaignId = Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")]


@reports_errors
def pause(campaign_id: CampaignId, by: By = None, reason: Reason = None) -> None:
    """Stop sending a campaign's queued messages (they wait; nothing is lost or sent twice)."""
    from outreach.delivery.campaign_control import pause as do_pause

    cfg = settings()
    result = do_pause(store(cfg), campaign_id, by or audit.default_actor(), reason)
    console.print(f"{campaign_id} paused: {result.rows} queued messages wait for `resume`", highlight=False)


@reports_errors
def resume(campaign_id: CampaignId, by: By = None, reason: Reason = None) -> None:
    """Send a paused (or cancelled) campaign's queued messages again."""
    from outreach.delivery.campaign_control import resume as do_resume
    from workers.broker import running_workers

    cfg = settings()
    engine = store(cfg)
    with running_workers(cfg, engine) as handle:
        result = do_resume(engine, campaign_id, handle.transport, cfg.batch_size, by or audit.default_actor(), reason)
        handle.deliver_in_process()
    console.print(f"{campaign_id} resumed: {result.rows} queued messages handed to the workers", highlight=False)


@reports_errors
def cancel(campaign_id: CampaignId, by: By = None, reason: Reason = None) -> None:
    """Suppress everything of a campaign that has not gone (reason `cancelled`); no further occurrences."""
    from outreach.delivery.campaign_control import cancel as do_cancel

    cfg = settings()
    result = do_cancel(store(cfg), campaign_id, by or audit.default_actor(), reason)
    console.print(f"{campaign_id} cancelled: {result.rows} messages suppressed", highlight=False)


@reports_errors
def consent(
    customer_id: Annotated[str, typer.Argument(metavar="CUSTOMER_ID")],
    channel: Annotated[str, typer.Argument(help="sms, email, whatsapp or wechat")],
    purpose: Annotated[str, typer.Argument(help="marketing or service")],
    status: Annotated[str, typer.Argument(help="granted or revoked")],
    by: By = None,
    reason: Reason = None,
) -> None:
    """Set a customer's consent by hand (a branch form, a call-centre request); audited."""
    from outreach.channels.base import CHANNELS
    from outreach.customers.profiles import ConsentStatus, get_customer, set_consent
    from outreach.store.database import utcnow

    problems = []
    if channel not in CHANNELS:
        problems.append(("CHANNEL", f"{channel!r}: use sms, email, whatsapp or wechat"))
    if purpose not in ("marketing", "service"):
        problems.append(("PURPOSE", f"{purpose!r}: use marketing or service"))
    if status not in ("granted", "revoked"):
        problems.append(("STATUS", f"{status!r}: use granted or revoked"))
    if problems:
        raise InputError([Problem(where, None, None, message) for where, message in problems])
    cfg = settings()
    engine = store(cfg)
    actor = by or audit.default_actor()
    with engine.begin() as conn:
        if get_customer(conn, customer_id) is None:
            raise InputError.single(customer_id, "no customer with this id")
        now = utcnow()
        new_status: ConsentStatus = "granted" if status == "granted" else "revoked"
        changed = set_consent(conn, customer_id, channel, purpose, new_status, f"operator:{actor}", at=now)
        audit.record(
            conn, actor, "consent", target=customer_id, reason=reason, rows=int(changed), at=now,
            detail={"channel": channel, "purpose": purpose, "status": status},
        )  # fmt: skip
    console.print(f"{customer_id}: {channel} {purpose} {status}" + ("" if changed else " (unchanged)"), highlight=False)


audit_app = typer.Typer(help="The log of operator actions.", no_args_is_help=True, rich_markup_mode=None)


@audit_app.command("list")
@reports_errors
def audit_list(
    since: Annotated[str | None, typer.Option(help="Only entries since this ISO date or time.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action (replay, pause, resume, cancel, consent).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Who did what, when, why, and to how many rows; the latest first."""
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            raise InputError.single("--since", f"{since!r} is not an ISO date or time") from None
        if start.tzinfo is None:
            start = start.astimezone()
    cfg = settings()
    with store(cfg).connect() as conn:
        rows = audit.entries(conn, since=start, action=action, limit=limit)
    if as_json:
        print_json(rows)
        return
    table = Table("at", "by", "action", "target", "rows", "reason", "filter / detail", title="audit log")
    for r in rows:
        extra: Any = r["filter"] or r["detail"] or ""
        table.add_row(
            r["at"].isoformat(timespec="seconds"), r["actor"], r["action"], r["target"] or "", str(r["rows"]),
            r["reason"] or "", str(extra),
        )  # fmt: skip
    print_table(table)


@reports_errors
def reply(
    customer_id: Annotated[str, typer.Argument(metavar="CUSTOMER_ID")],
    text: Annotated[str | None, typer.Argument(metavar="[TEXT]", help="The reply (or use --template).")] = None,
    channel: Annotated[str, typer.Option("--channel", help="sms, email, whatsapp or wechat.")] = "sms",
    template: Annotated[
        str | None, typer.Option("--template", help="A template under OUTREACH_TEMPLATES_DIR instead of TEXT.")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Email subject.")] = None,
    by: By = None,
) -> None:
    """Reply to one customer through the ledger and the workers (WhatsApp/WeChat only inside their window).
    It answers their open conversation."""
    from outreach.inbound.operator_reply import reply_from_template, reply_status, send_reply
    from workers.broker import running_workers

    if (text is None) == (template is None):
        raise InputError.single("TEXT", "give the reply as TEXT or as --template NAME, not both")
    cfg = settings()
    engine = store(cfg)
    html = None
    if template is not None:
        rendered = reply_from_template(engine, cfg, customer_id, channel, template)
        text, subject, html = rendered.body, subject or rendered.subject, rendered.html
    assert text is not None
    with running_workers(cfg, engine) as handle:
        delivery_id = send_reply(
            engine, handle.transport, customer_id, channel, text, by or audit.default_actor(), subject, html
        )
        handle.deliver_in_process()
    console.print(
        f"reply {delivery_id} to {customer_id} by {channel}: {reply_status(engine, delivery_id)}", highlight=False
    )
