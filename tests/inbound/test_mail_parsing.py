"""Classifying inbound mail: DSNs as Postfix writes them, replies in UTF-8 and GB18030, auto-replies, junk."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.inbound.mail_parsing import Dsn, DsnRecipient, Other, Reply, classify, message_ids
from tests.postfix_dsns import Report
from tests.postfix_dsns import delayed as delayed_block
from tests.postfix_dsns import expanded as expanded_block
from tests.postfix_dsns import failed as failed_block
from tests.postfix_dsns import postfix_dsn as full_postfix_dsn
from tests.postfix_dsns import relayed as relayed_block

ORIGINAL_ID = "<outreach.42.abcdef0123@bank.example>"
SENT = datetime(2024, 10, 8, 9, 30, tzinfo=UTC)


def original_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Example Bank <service@bank.example>"
    msg["To"] = "zhang.wei@mail.example.cn"
    msg["Subject"] = "您的理财产品到期提醒"
    msg["Message-ID"] = ORIGINAL_ID
    msg["Date"] = format_datetime(SENT)
    msg.set_content("尊敬的客户，您的理财产品将于下周到期。")
    return msg


BOUNDARY = "1A2B3C4D5E.1728379812/mx.bank.example"


def postfix_dsn(
    recipients: list[dict[str, str]],
    *,
    returned: str = "headers",
    message_id: str | None = "<20241008093012.1A2B3C4D5E@mx.bank.example>",
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A bounce laid out byte for byte as Postfix's bounce daemon writes it: the notification, the delivery
    report (per-message fields, then a block per recipient) and the returned headers or whole message."""
    headers = {
        "Return-Path": "<>",
        "Date": format_datetime(SENT),
        "From": "MAILER-DAEMON@mx.bank.example (Mail Delivery System)",
        "Subject": "Undelivered Mail Returned to Sender",
        "To": "bounces@bank.example",
        "Auto-Submitted": "auto-replied",
        "MIME-Version": "1.0",
        "Content-Type": f'multipart/report; report-type=delivery-status;\r\n\tboundary="{BOUNDARY}"',
        "Content-Transfer-Encoding": "8bit",
        **({"Message-Id": message_id} if message_id else {}),
        **(extra_headers or {}),
    }
    per_message = {
        "Reporting-MTA": "dns; mx.bank.example",
        "X-Postfix-Queue-ID": "1A2B3C4D5E",
        "X-Postfix-Sender": "rfc822; bounces@bank.example",
        "Arrival-Date": "Tue,  8 Oct 2024 17:30:01 +0800 (CST)",
    }
    status = "\r\n".join("".join(f"{k}: {v}\r\n" for k, v in block.items()) for block in [per_message, *recipients])
    original = original_message().as_bytes(policy=SMTP)
    parts = [
        b"Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        b"This is the mail system at host mx.bank.example.\r\n\r\n"
        b"I'm sorry to have to inform you that your message could not\r\n"
        b"be delivered to one or more recipients.\r\n",
        b"Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
        + status.encode("ascii"),
    ]
    if returned == "headers":
        parts.append(
            b"Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + original.split(b"\r\n\r\n", 1)[0] + b"\r\n"
        )
    elif returned == "message":
        parts.append(
            b"Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + original
        )
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("ascii")
    body = b"".join(b"\r\n--" + BOUNDARY.encode() + b"\r\n" + part for part in parts)
    return head + b"\r\nThis is a MIME-encapsulated message.\r\n" + body + b"\r\n--" + BOUNDARY.encode() + b"--\r\n"


def failed(address: str, status: str = "5.1.1", text: str = "User unknown") -> dict[str, str]:
    return {
        "Final-Recipient": f"rfc822; {address}",
        "Original-Recipient": f"rfc822;{address}",
        "Action": "failed",
        "Status": status,
        "Remote-MTA": "dns; mx.mail.example.cn",
        "Diagnostic-Code": f"smtp; 550 {status} <{address}>: Recipient address rejected: {text}",
    }


def test_postfix_hard_bounce_with_returned_headers() -> None:
    result = classify(postfix_dsn([failed("Zhang.Wei@Mail.Example.CN")]))
    assert result == Dsn(
        message_id="<20241008093012.1A2B3C4D5E@mx.bank.example>",
        original_message_ids=(ORIGINAL_ID,),
        recipients=(
            DsnRecipient(
                final_recipient="zhang.wei@mail.example.cn",
                original_recipient="zhang.wei@mail.example.cn",
                action="failed",
                status="5.1.1",
                diagnostic="550 5.1.1 <Zhang.Wei@Mail.Example.CN>: Recipient address rejected: User unknown",
            ),
        ),
        addressed_to=("bounces@bank.example",),  # the To, and Postfix's note of the original's sender
    )
    assert result.recipients[0].kind == "hard"


def test_dsn_with_whole_original_message() -> None:
    result = classify(postfix_dsn([failed("a@mail.example.cn")], returned="message"))
    assert isinstance(result, Dsn)
    assert result.original_message_ids == (ORIGINAL_ID,)


def test_delayed_dsn_is_no_failure() -> None:
    delayed = {
        "Final-Recipient": "rfc822; li.na@mail.example.cn",
        "Action": "delayed",
        "Status": "4.4.1",
        "Diagnostic-Code": "X-Postfix; connect to mx.mail.example.cn[203.0.113.5]:25: Connection timed out",
        "Will-Retry-Until": "Sat, 12 Oct 2024 17:30:01 +0800 (CST)",
    }
    result = classify(postfix_dsn([delayed]))
    assert isinstance(result, Dsn)
    (recipient,) = result.recipients
    # RFC 3464 2.3.3: `delayed` says the MTA is still trying; only `failed` is a failure
    assert (recipient.action, recipient.status, recipient.kind, recipient.notice) == (
        "delayed",
        "4.4.1",
        None,
        "delayed",
    )
    assert recipient.will_retry_until == "Sat, 12 Oct 2024 17:30:01 +0800 (CST)"
    assert recipient.original_recipient is None
    assert recipient.diagnostic == "connect to mx.mail.example.cn[203.0.113.5]:25: Connection timed out"


@pytest.mark.parametrize(
    ("report", "block", "kind", "notice"),
    [
        ("failure", failed_block("li.na@mail.example.cn"), "hard", None),
        ("failure", failed_block("li.na@mail.example.cn", "4.2.2", "Mailbox full"), "soft", None),  # gave up
        ("delay", delayed_block("li.na@mail.example.cn"), None, "delayed"),
        ("success", relayed_block("li.na@mail.example.cn"), None, "relayed"),
        ("success", expanded_block("li.na@mail.example.cn"), None, "expanded"),
    ],
)
def test_each_action_of_a_postfix_report(report: Report, block: dict[str, str], kind: str, notice: str) -> None:
    result = classify(full_postfix_dsn(original_message().as_bytes(policy=SMTP), [block], report=report))
    assert isinstance(result, Dsn) and result.original_message_ids == (ORIGINAL_ID,)
    (recipient,) = result.recipients
    assert (recipient.final_recipient, recipient.kind, recipient.notice) == ("li.na@mail.example.cn", kind, notice)


def test_a_delay_warning_under_another_mtas_subject_is_read_the_same() -> None:
    """The subject is for people (Gmail and Exchange say "Delivery Status Notification (Delay)"): the report
    part decides."""
    raw = full_postfix_dsn(
        original_message().as_bytes(policy=SMTP),
        [delayed_block("li.na@mail.example.cn")],
        report="delay",
        subject="Delivery Status Notification (Delay)",
    )
    result = classify(raw)
    assert isinstance(result, Dsn)
    assert [(r.kind, r.notice, r.status) for r in result.recipients] == [(None, "delayed", "4.4.1")]


def test_dsn_with_two_recipients() -> None:
    delivered = {"Final-Recipient": "rfc822; ok@mail.example.cn", "Action": "delivered", "Status": "2.0.0"}
    over_quota = failed("full@mail.example.cn", "4.2.2", "Mailbox full")
    result = classify(postfix_dsn([failed("gone@mail.example.cn"), delivered, over_quota]))
    assert isinstance(result, Dsn)
    kinds = [(r.final_recipient, r.kind) for r in result.recipients]
    assert kinds == [
        ("gone@mail.example.cn", "hard"),
        ("ok@mail.example.cn", None),
        ("full@mail.example.cn", "soft"),
    ]


def test_dsn_without_message_id_is_named_by_its_hash() -> None:
    raw = postfix_dsn([failed("a@mail.example.cn")], message_id=None)
    result = classify(raw)
    assert isinstance(result, Dsn)
    assert result.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_dsn_original_ids_from_headers_when_nothing_returned() -> None:
    raw = postfix_dsn(
        [failed("a@mail.example.cn")],
        returned="none",
        extra_headers={"X-Original-Message-ID": ORIGINAL_ID, "References": "<older@bank.example>"},
    )
    result = classify(raw)
    assert isinstance(result, Dsn)
    assert result.original_message_ids == (ORIGINAL_ID,)
    bare = classify(postfix_dsn([failed("a@x.cn")], returned="none", extra_headers={"In-Reply-To": ORIGINAL_ID}))
    assert isinstance(bare, Dsn)
    assert bare.original_message_ids == (ORIGINAL_ID,)


def test_dsn_fields_read_leniently() -> None:
    raw = (
        b"From: postmaster@mx.example.cn\r\n"
        b"Message-ID: <b1@mx.example.cn>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: Multipart/Report; Report-Type="Delivery-Status"; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--b\r\nContent-Type: Message/Delivery-Status\r\n\r\n"
        b"reporting-mta:dns;mx.example.cn\r\n\r\n"
        b"FINAL-RECIPIENT:   RFC822;   <Wang.Fang@Example.CN>  \r\n"
        b"ACTION:  Failed (bad mailbox)\r\n"
        b"status:5.2.1\r\n"
        b"diagnostic-code: smtp;\r\n  550 mailbox disabled\r\n\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Message-ID:\r\n <outreach.7.0011223344@bank.example>\r\nSubject: hi\r\n\r\nbody\r\n"
        b"--b--\r\n"
    )
    result = classify(raw)
    assert result == Dsn(
        message_id="<b1@mx.example.cn>",
        original_message_ids=("<outreach.7.0011223344@bank.example>",),
        recipients=(DsnRecipient("wang.fang@example.cn", None, "failed", "5.2.1", "550 mailbox disabled"),),
    )


def reply(body: str | None, charset: str = "utf-8", html: str | None = None, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "=?utf-8?b?5byg5Lyf?= <Zhang.Wei@Mail.Example.CN>")
    msg["To"] = "service@bank.example"
    msg["Subject"] = headers.pop("Subject", "Re: 您的理财产品到期提醒")
    msg["Message-ID"] = "<reply-1@mail.example.cn>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    if body is not None:
        msg.set_content(body, charset=charset, cte="base64" if charset != "utf-8" else "8bit")
    if html is not None:
        if body is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def test_reply_in_utf8_with_chinese_attribution() -> None:
    body = (
        "好的，请帮我续期。\n谢谢！\n\n"
        "在 2024年10月8日 周二 17:30，Example Bank <service@bank.example> 写道：\n"
        "> 尊敬的客户，您的理财产品将于下周到期。\n"
    )
    raw = reply(body, In_Reply_To=ORIGINAL_ID, References=f"<older@bank.example> {ORIGINAL_ID}")
    assert classify(raw) == Reply(
        message_id="<reply-1@mail.example.cn>",
        in_reply_to=(ORIGINAL_ID, "<older@bank.example>"),
        sender="zhang.wei@mail.example.cn",
        subject="Re: 您的理财产品到期提醒",
        text="好的，请帮我续期。\n谢谢！",
    )


def test_reply_in_gb18030_with_outlook_header_block() -> None:
    body = (
        "请不要再给我发邮件。\n\n"
        "-----原始邮件-----\n"
        "发件人: Example Bank <service@bank.example>\n"
        "发送时间: 2024年10月8日 17:30\n"
        "尊敬的客户，您的理财产品将于下周到期。\n"
    )
    result = classify(reply(body, charset="gb18030", References=ORIGINAL_ID))
    assert isinstance(result, Reply)
    assert result.text == "请不要再给我发邮件。"
    assert result.in_reply_to == (ORIGINAL_ID,)


def test_reply_declared_gb2312_but_using_gbk_characters() -> None:
    body = "镕基金怎么赎回？\n发件人：Example Bank\n"
    raw = reply(None, html=None, In_Reply_To=ORIGINAL_ID)
    raw = raw.replace(b"MIME-Version", b"Content-Type: text/plain; charset=gb2312\nMIME-Version")
    raw = raw.rstrip(b"\n") + b"\n\n" + body.encode("gb18030")
    result = classify(raw)
    assert isinstance(result, Reply)
    assert result.text == "镕基金怎么赎回？"


def test_reply_in_english_with_quotes_and_wrapped_attribution() -> None:
    body = (
        "Please call me tomorrow.\n"
        "> Your product matures next week.\n"
        "Thanks, Wei\n\n"
        "On Tue, 8 Oct 2024 at 17:30, Example Bank <service@bank.example>\n"
        "wrote:\n"
        "> Your product matures next week.\n"
    )
    result = classify(reply(body, In_Reply_To=ORIGINAL_ID))
    assert isinstance(result, Reply)
    assert result.text == "Please call me tomorrow.\nThanks, Wei"


def test_reply_with_outlook_original_message_separator() -> None:
    body = "Yes, renew it.\r\n\r\n-----Original Message-----\r\nFrom: Example Bank\r\nSent: Tuesday\r\nHi\r\n"
    result = classify(reply(body, In_Reply_To=ORIGINAL_ID, From="wei@example.com"))
    assert isinstance(result, Reply)
    assert (result.text, result.sender) == ("Yes, renew it.", "wei@example.com")


def test_html_only_reply_is_stripped_to_text() -> None:
    html = (
        "<html><head><style>p {color: red}</style></head><body>"
        "<div dir='ltr'>I&#39;d like to <b>renew</b>.<br>Wei</div>"
        "<div class='gmail_quote'><div class='gmail_attr'>On Tue, 8 Oct 2024 Example Bank wrote:<br></div>"
        "<blockquote>Your product matures next week.</blockquote></div></body></html>"
    )
    result = classify(reply(None, html=html, In_Reply_To=ORIGINAL_ID))
    assert isinstance(result, Reply)
    assert result.text == "I'd like to renew.\nWei"


def test_plain_text_preferred_over_html_and_text_capped() -> None:
    result = classify(reply("x" * 20_000, html="<p>html</p>", In_Reply_To=ORIGINAL_ID))
    assert isinstance(result, Reply)
    assert result.text == "x" * 10_000


def test_out_of_office_is_other() -> None:
    body = "I am out of the office until 15 October."
    for headers in ({"Auto_Submitted": "auto-replied"}, {"X_Autoreply": "yes"}, {"Precedence": "Bulk"}):
        result = classify(reply(body, In_Reply_To=ORIGINAL_ID, **headers))
        assert isinstance(result, Other)
        assert result.reason.startswith("auto-reply")
        assert result.message_id == "<reply-1@mail.example.cn>"
    assert isinstance(classify(reply(body, In_Reply_To=ORIGINAL_ID, Auto_Submitted="no")), Reply)


def test_other_messages() -> None:
    assert isinstance(classify(reply("hello")), Other)
    receipt = MIMEMultipart("report", report_type="disposition-notification")
    receipt["In-Reply-To"] = ORIGINAL_ID
    receipt.attach(MIMEText("Your message was read."))
    receipt.attach(
        MIMEText(
            "Final-Recipient: rfc822; wei@example.com\nDisposition: manual-action/MDN-sent-manually; displayed\n",
            "disposition-notification",
        )
    )
    result = classify(receipt.as_bytes())
    assert isinstance(result, Other)
    assert "disposition-notification" in result.reason


def test_garbage_bytes_are_other() -> None:
    for raw in (b"", b"\x00\xff\xfe" * 100, bytes(range(256)) * 4, b"Content-Type: multipart/report\n\n--"):
        result = classify(raw)
        assert isinstance(result, Other)
        assert result.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=2000))
def test_classify_never_raises(raw: bytes) -> None:
    assert isinstance(classify(raw), Dsn | Reply | Other)


@settings(deadline=None, max_examples=100)
@given(st.text(max_size=200), st.binary(max_size=200))
def test_classify_never_raises_on_broken_mime(header: str, body: bytes) -> None:
    raw = (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n"
        + b"In-Reply-To: "
        + header.encode("utf-8", "replace")
        + b"\n\n--x\n"
        + b"Content-Type: message/delivery-status\n\n"
        + body
        + b"\n--x--\n"
    )
    assert isinstance(classify(raw), Dsn | Reply | Other)


def test_message_ids() -> None:
    assert message_ids("<a@x> <b@y>\r\n <a@x>") == ["<a@x>", "<b@y>"]
    assert message_ids("<outreach.42.\r\n abcdef0123@bank.example>") == [ORIGINAL_ID]
    assert message_ids("bare@host.example") == ["<bare@host.example>"]
    assert message_ids("no ids here") == []
    assert message_ids("") == []
