"""`outreach conversations ...`: who wrote to the bank, who is waiting for an answer and for how long."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from outreach.cli.common import console, print_json, print_table, reports_errors, settings, store
from outreach.core.errors import InputError, OutreachError
from outreach.store import audit

app = typer.Typer(
    help="Conversations: customers' messages and the answers they got.", no_args_is_help=True, rich_markup_mode=None
)

Json = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
ConversationId = Annotated[int, typer.Argument(metavar="CONVERSATION_ID")]


@app.command("list")
@reports_errors
def list_(
    open_only: Annotated[bool, typer.Option("--open", help="Only open conversations.")] = False,
    tag: Annotated[str | None, typer.Option("--tag", help="Only those with this tag (e.g. complaint).")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer's.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 200,
    as_json: Json = False,
) -> None:
    """Conversations, those waiting longest for an operator first."""
    from outreach.customers.conversations import Filter, list_conversations, span_text
    from outreach.store.database import utcnow

    if limit < 1:
        raise InputError.single("--limit", f"{limit} is not a positive number")
    engine = store(settings())
    with engine.connect() as conn:
        rows = list_conversations(conn, Filter(open_only, tag, customer, limit), utcnow())
    if as_json:
        print_json({"conversations": rows})
        return
    if not rows:
        console.print("no conversations match")
        return
    table = Table(
        "id", "customer", "name", "channel", "tags", "status", "waiting", "messages", "last message", "escalated",
        title_justify="left",
    )  # fmt: skip
    for row in rows:
        waiting = span_text(timedelta(seconds=row["waiting_s"])) if row["waiting_s"] is not None else "-"
        status = "closed" if row["status"] == "closed" else "waiting" if row["waiting_s"] is not None else "answered"
        table.add_row(
            str(row["id"]),
            escape(row["customer_id"]),
            escape((row["name"] or "") + (" (provisional)" if row["provisional"] else "")),
            row["channel"],
            escape(", ".join(row["tags"] or [])),
            status,
            waiting,
            str(row["messages"]),
            row["last_inbound_at"].isoformat(timespec="seconds"),
            row["escalated_at"].isoformat(timespec="seconds") if row["escalated_at"] else "-",
        )
    print_table(table)


@app.command()
@reports_errors
def show(conversation_id: ConversationId, as_json: Json = False) -> None:
    """One conversation: the customer's messages and ours, in order."""
    from outreach.customers.conversations import get_conversation, transcript

    engine = store(settings())
    with engine.connect() as conn:
        conversation = get_conversation(conn, conversation_id)
        if conversation is None:
            raise InputError.single(str(conversation_id), "no conversation with this id")
        messages = transcript(conn, conversation_id)
    if as_json:
        print_json({"conversation": conversation, "messages": messages})
        return
    _print_conversation(conversation, messages)


def _print_conversation(conversation: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    state = conversation["status"]
    if state == "open":
        state = "waiting for an operator" if conversation["waiting_since"] else "answered"
    tags = ", ".join(conversation["tags"] or []) or "-"
    console.print(
        f"conversation {conversation['id']} with {escape(conversation['customer_id'])}: {state}; tags: {escape(tags)}",
        highlight=False,
    )
    for message in messages:
        who = "customer" if message["direction"] == "in" else f"{message['by']} ({message['status']})"
        console.print(
            f"{message['at']:%Y-%m-%d %H:%M:%S} {message['channel']:<8} {escape(who)}: {escape(message['text'] or '')}",
            highlight=False,
        )


@app.command()
@reports_errors
def close(
    conversation_id: ConversationId,
    by: Annotated[str | None, typer.Option("--by", help="Who closes it (default: the OS user).")] = None,
) -> None:
    """Close a conversation: nobody is waiting any more (it is not escalated)."""
    from outreach.customers.conversations import close as do_close
    from outreach.store.database import utcnow

    actor = by or audit.default_actor()
    engine = store(settings())
    with engine.begin() as conn:
        now = utcnow()
        if not do_close(conn, conversation_id, actor, now):
            raise OutreachError(f"conversation {conversation_id} is not open (or does not exist)")
        audit.record(conn, actor, "close_conversation", target=str(conversation_id), rows=1, at=now)
    console.print(f"conversation {conversation_id} closed", highlight=False)


@app.command()
@reports_errors
def escalate() -> None:
    """Escalate now the complaints nobody answered in time (the scheduler does this on every tick)."""
    from outreach.inbound.escalation import escalate_due
    from outreach.store.database import utcnow
    from workers.broker import running_workers

    cfg = settings()
    if not cfg.service_email:
        raise InputError.single("OUTREACH_SERVICE_EMAIL", "no service address to escalate to")
    engine = store(cfg)
    with running_workers(cfg, engine) as handle:
        rows = escalate_due(engine, cfg, handle.transport, utcnow())
        handle.deliver_in_process()
    console.print(f"{len(rows)} conversations escalated to {cfg.service_email}", highlight=False)
