"""Email delivery: the SMTP provider against a real aiosmtpd server, and the file outbox."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest

from outreach.channels.base import Outcome, OutgoingMessage, SendResult
from outreach.channels.email_message import ReturnPath, delivery_id_from_message_id, message_id_for, render_email
from outreach.channels.outbox import OutboxProvider
from outreach.channels.smtp import SmtpProvider
from outreach.core.errors import InputError
from tests.services import free_port
from tests.smtp_server import SmtpServer

EMAIL_FROM = "招商银行 Bank <no-reply@bank.example>"
# A signed unsubscribe link is longer than one header line: it must still arrive as one intact URL.
UNSUBSCRIBE_URL = "https://bank.example/u/" + "Y3VzdC0xfGVtYWlsfG1hcmtldGluZw" * 4 + ".q2b7Lw0dJ8zG1lqkK3Bv9A"
PASSWORD = "s3cr3t@pw/x"  # characters that must be percent-encoded in the URL
QUOTED_PASSWORD = quote(PASSWORD, safe="")


def email_to(delivery_id: int, to: str, subject: str = "Your statement", html: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        delivery_id=delivery_id,
        customer_id=f"C{delivery_id}",
        channel="email",
        to=to,
        body=f"Hello {delivery_id},\nyour statement is ready.",
        subject=subject,
        html=html,
        headers={
            "List-Unsubscribe": f"<{UNSUBSCRIBE_URL}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        message_id=message_id_for(delivery_id, f"campaign-1:C{delivery_id}:email", EMAIL_FROM),
    )


def send(provider: SmtpProvider | OutboxProvider, messages: list[OutgoingMessage]) -> list[SendResult]:
    results = asyncio.run(provider.send_many(messages))
    assert sorted(r.delivery_id for r in results) == sorted(m.delivery_id for m in messages)
    return sorted(results, key=lambda r: [m.delivery_id for m in messages].index(r.delivery_id))


def provider_for(server: SmtpServer, timeout: float = 5.0) -> SmtpProvider:
    return SmtpProvider(server.url, EMAIL_FROM, timeout, local_hostname="client.test")


@pytest.fixture
def auth_smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), users={"mailer": PASSWORD})
    server.start()
    yield server
    server.stop()


def test_a_batch_goes_over_one_connection_with_everything_a_mail_client_needs(smtp_server: SmtpServer) -> None:
    messages = [
        email_to(1, "ana@example.com", subject="您的信用卡账单已出 — 12月", html="<p>你好 <b>Ana</b></p>"),
        email_to(2, "bo@example.com", html="<p>Hello Bo</p>"),
        email_to(3, "cy@example.com"),
    ]

    results = send(provider_for(smtp_server), messages)

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert [r.provider_id for r in results] == [m.message_id for m in messages]
    assert smtp_server.handler.connections == 1
    received = {mail.rcpt_tos[0]: mail for mail in smtp_server.handler.received}
    assert set(received) == {"ana@example.com", "bo@example.com", "cy@example.com"}
    assert {mail.mail_from for mail in received.values()} == {"no-reply@bank.example"}

    first = received["ana@example.com"].message
    assert b"=?utf-8?" in received["ana@example.com"].data  # the subject travelled as RFC 2047 encoded-words
    assert first["Subject"] == "您的信用卡账单已出 — 12月"
    assert first["From"] == EMAIL_FROM
    assert first["To"] == "ana@example.com"
    assert first["Date"] is not None
    assert first.get_content_type() == "multipart/alternative"
    assert _part(first, "plain").replace("\r\n", "\n") == "Hello 1,\nyour statement is ready.\n"
    assert _part(first, "html").strip() == "<p>你好 <b>Ana</b></p>"
    for delivery_id, address in [(1, "ana@example.com"), (2, "bo@example.com"), (3, "cy@example.com")]:
        mail = received[address].message
        assert mail["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert delivery_id_from_message_id(mail["Message-ID"]) == delivery_id
    assert received["cy@example.com"].message.get_content_type() == "text/plain"


def test_an_unknown_mailbox_is_permanent_and_the_rest_of_the_batch_still_goes(smtp_server: SmtpServer) -> None:
    smtp_server.handler.behaviour.rcpt_replies["nobody@example.com"] = "550 5.1.1 <nobody@example.com>: no such user"
    messages = [email_to(1, "ana@example.com"), email_to(2, "nobody@example.com"), email_to(3, "cy@example.com")]

    results = send(provider_for(smtp_server), messages)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.PERMANENT, Outcome.SENT]
    refused = results[1]
    assert refused.error_code == "550"
    assert refused.address_invalid
    assert refused.error is not None and "no such user" in refused.error
    assert [m.rcpt_tos for m in smtp_server.handler.received] == [["ana@example.com"], ["cy@example.com"]]
    assert smtp_server.handler.connections == 1  # the session survived the refusal


@pytest.mark.parametrize(
    ("reply", "outcome", "address_invalid"),
    [
        ("550 5.1.1 User unknown", Outcome.PERMANENT, True),
        ("553 5.1.3 Bad recipient address syntax", Outcome.PERMANENT, True),
        ("551 User not local", Outcome.PERMANENT, True),
        ("550 5.7.1 Relaying denied", Outcome.PERMANENT, False),
        ("552 5.2.2 Mailbox full", Outcome.PERMANENT, False),
        ("450 4.2.1 Mailbox busy, try later", Outcome.TRANSIENT, False),
        ("452 4.3.1 Insufficient system storage", Outcome.TRANSIENT, False),
    ],
)
def test_rcpt_replies_map_to_outcomes(
    smtp_server: SmtpServer, reply: str, outcome: Outcome, address_invalid: bool
) -> None:
    smtp_server.handler.behaviour.rcpt_replies["x@example.com"] = reply

    [result, after] = send(provider_for(smtp_server), [email_to(1, "x@example.com"), email_to(2, "ok@example.com")])

    assert (result.outcome, result.address_invalid, result.error_code) == (outcome, address_invalid, reply[:3])
    assert after.outcome == Outcome.SENT


def test_451_at_data_is_transient_and_the_session_goes_on(smtp_server: SmtpServer) -> None:
    smtp_server.handler.behaviour.data_failures = 1
    messages = [email_to(1, "ana@example.com"), email_to(2, "bo@example.com"), email_to(3, "cy@example.com")]

    results = send(provider_for(smtp_server), messages)

    assert [r.outcome for r in results] == [Outcome.TRANSIENT, Outcome.SENT, Outcome.SENT]
    assert results[0].error_code == "451"
    assert not results[0].address_invalid
    assert [m.rcpt_tos for m in smtp_server.handler.received] == [["bo@example.com"], ["cy@example.com"]]
    assert smtp_server.handler.connections == 1


def test_554_at_data_is_permanent_but_not_the_address(smtp_server: SmtpServer) -> None:
    smtp_server.handler.behaviour.data_reply = "554 5.7.1 Message rejected as spam"
    smtp_server.handler.behaviour.data_failures = 1

    [rejected, sent] = send(provider_for(smtp_server), [email_to(1, "ana@example.com"), email_to(2, "bo@example.com")])

    assert (rejected.outcome, rejected.error_code, rejected.address_invalid) == (Outcome.PERMANENT, "554", False)
    assert sent.outcome == Outcome.SENT


def test_a_server_closing_the_session_costs_one_message_and_the_next_reconnects(smtp_server: SmtpServer) -> None:
    smtp_server.handler.behaviour.data_reply = "421 4.3.2 Service shutting down"
    smtp_server.handler.behaviour.data_failures = 1
    messages = [email_to(1, "ana@example.com"), email_to(2, "bo@example.com"), email_to(3, "cy@example.com")]

    results = send(provider_for(smtp_server), messages)

    assert [r.outcome for r in results] == [Outcome.TRANSIENT, Outcome.SENT, Outcome.SENT]
    assert results[0].error_code == "421"
    assert len(smtp_server.handler.received) == 2


def test_a_dropped_connection_is_transient_and_the_next_message_reconnects(smtp_server: SmtpServer) -> None:
    smtp_server.handler.behaviour.data_disconnects = 1
    messages = [email_to(1, "ana@example.com"), email_to(2, "bo@example.com"), email_to(3, "cy@example.com")]

    results = send(provider_for(smtp_server), messages)

    assert [r.outcome for r in results] == [Outcome.TRANSIENT, Outcome.SENT, Outcome.SENT]
    assert results[0].error_code == "disconnected"
    assert [m.rcpt_tos for m in smtp_server.handler.received] == [["bo@example.com"], ["cy@example.com"]]


def test_no_server_listening_makes_every_message_transient_without_leaking_the_password() -> None:
    url = f"smtp://mailer:{QUOTED_PASSWORD}@127.0.0.1:{free_port()}"
    provider = SmtpProvider(url, EMAIL_FROM, 2.0, local_hostname="client.test")
    messages = [email_to(1, "ana@example.com"), email_to(2, "bo@example.com"), email_to(3, "cy@example.com")]

    results = send(provider, messages)

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 3
    assert len({r.error for r in results}) == 1
    error = results[0].error
    assert error is not None and "127.0.0.1" in error
    _assert_no_password(results)
    assert PASSWORD not in repr(provider) and QUOTED_PASSWORD not in repr(provider)


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with socket.socket() as silent:  # accepts the TCP connection (backlog) but never sends a greeting
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        provider = SmtpProvider(f"smtp://127.0.0.1:{port}", EMAIL_FROM, 0.3, local_hostname="client.test")

        results = send(provider, [email_to(1, "ana@example.com"), email_to(2, "bo@example.com")])

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2


def test_login_with_credentials_from_the_url(auth_smtp_server: SmtpServer) -> None:
    provider = SmtpProvider(
        f"smtp://mailer:{QUOTED_PASSWORD}@127.0.0.1:{auth_smtp_server.port}",
        EMAIL_FROM,
        5.0,
        local_hostname="client.test",
    )

    results = send(provider, [email_to(1, "ana@example.com"), email_to(2, "bo@example.com")])

    assert [r.outcome for r in results] == [Outcome.SENT] * 2
    assert [m.login for m in auth_smtp_server.handler.received] == ["mailer", "mailer"]


def test_a_refused_login_is_transient_and_the_password_is_masked_even_when_the_server_echoes_it(
    auth_smtp_server: SmtpServer,
) -> None:
    auth_smtp_server.handler.behaviour.auth_reply = f"535 5.7.8 Credentials mailer:{PASSWORD} rejected"
    provider = SmtpProvider(
        f"smtp://mailer:{QUOTED_PASSWORD}@127.0.0.1:{auth_smtp_server.port}",
        EMAIL_FROM,
        5.0,
        local_hostname="client.test",
    )

    results = send(provider, [email_to(1, "ana@example.com"), email_to(2, "bo@example.com")])

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert [r.error_code for r in results] == ["535", "535"]
    assert results[0].error is not None and "mailer:***" in results[0].error
    _assert_no_password(results)
    assert auth_smtp_server.handler.received == []


def test_a_malformed_address_is_permanent_without_disturbing_the_batch(smtp_server: SmtpServer) -> None:
    messages = [
        email_to(1, "not an address"),
        email_to(2, "a@example.com, b@example.com"),
        email_to(3, "cy@example.com"),
    ]

    results = send(provider_for(smtp_server), messages)

    assert [(r.outcome, r.address_invalid) for r in results] == [
        (Outcome.PERMANENT, True),
        (Outcome.PERMANENT, True),
        (Outcome.SENT, False),
    ]
    assert [m.rcpt_tos for m in smtp_server.handler.received] == [["cy@example.com"]]


def test_a_header_with_a_line_break_is_refused_not_injected(smtp_server: SmtpServer) -> None:
    bad = OutgoingMessage(1, "C1", "email", "ana@example.com", "hi", subject="x", headers={"X-Tag": "a\r\nBcc: e@x"})

    [result] = send(provider_for(smtp_server), [bad])

    assert result.outcome == Outcome.PERMANENT
    assert smtp_server.handler.received == []


def test_message_ids_are_deterministic_and_lead_back_to_the_delivery() -> None:
    first = message_id_for(42, "campaign-7:C1:email", "Bank <no-reply@Bank.Example>")
    assert first == message_id_for(42, "campaign-7:C1:email", "Bank <no-reply@Bank.Example>")
    assert first != message_id_for(42, "campaign-8:C1:email", "Bank <no-reply@Bank.Example>")
    assert first.startswith("<outreach.42.") and first.endswith("@bank.example>")
    assert delivery_id_from_message_id(first) == 42
    assert delivery_id_from_message_id(f"  {first[1:-1]} ") == 42
    assert delivery_id_from_message_id("<CAF=abc123@mail.gmail.com>") is None
    assert delivery_id_from_message_id("<outreach.x.0123456789@bank.example>") is None


def test_smtp_urls_are_checked_and_never_echo_the_password() -> None:
    for url in [
        f"http://u:{QUOTED_PASSWORD}@host:25",
        f"smtp://u:{QUOTED_PASSWORD}@host:25?starttls=maybe",
        f"smtps://u:{QUOTED_PASSWORD}@host:465?starttls=true",
        f"smtp://u:{QUOTED_PASSWORD}@host:25?tls=1",
        f"smtp://u:{QUOTED_PASSWORD}@host:port",
    ]:
        with pytest.raises(InputError) as raised:
            SmtpProvider(url, EMAIL_FROM)
        assert "***" in str(raised.value)
        assert PASSWORD not in str(raised.value) and QUOTED_PASSWORD not in str(raised.value)
    SmtpProvider("smtps://u:p@smtp.example:465", EMAIL_FROM)
    SmtpProvider("smtp://smtp.example:587?starttls=true", EMAIL_FROM)


def test_outbox_writes_one_file_per_message(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    sms = OutgoingMessage(9, "C9", "sms", "+8613800138000", "您的验证码是 123456 回复R拒收")
    messages = [email_to(1, "ana@example.com", subject="您的账单", html="<p>你好</p>"), sms]

    results = send(OutboxProvider(outbox, EMAIL_FROM), messages)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    eml, record = outbox / "email" / "1.eml", outbox / "sms" / "9.json"
    assert [r.provider_id for r in results] == [str(eml), str(record)]
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail["Subject"] == "您的账单"
    assert mail["To"] == "ana@example.com"
    assert mail["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>"
    assert delivery_id_from_message_id(mail["Message-ID"]) == 1
    assert _part(mail, "html").strip() == "<p>你好</p>"
    assert json.loads(record.read_text(encoding="utf-8")) == {
        "delivery_id": 9,
        "customer_id": "C9",
        "to": "+8613800138000",
        "body": "您的验证码是 123456 回复R拒收",
    }


def test_outbox_overwrites_a_redelivery_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    provider = OutboxProvider(tmp_path, EMAIL_FROM)
    message = email_to(5, "ana@example.com")
    changed = OutgoingMessage(5, "C5", "email", "ana@example.com", "second attempt", subject="again")

    send(provider, [message])
    send(provider, [changed])

    assert [p.name for p in (tmp_path / "email").iterdir()] == ["5.eml"]
    mail = message_from_bytes((tmp_path / "email" / "5.eml").read_bytes(), policy=policy.default)
    assert mail["Subject"] == "again"


def test_outbox_that_cannot_be_written_is_transient(tmp_path: Path) -> None:
    blocked = tmp_path / "outbox"
    blocked.write_text("a file where the folder should be")

    [result] = send(OutboxProvider(blocked, EMAIL_FROM), [email_to(1, "ana@example.com")])

    assert result.outcome == Outcome.TRANSIENT
    assert result.error is not None and "cannot write" in result.error


def test_an_email_without_html_is_plain_text() -> None:
    message = OutgoingMessage(3, "C3", "email", "cy@example.com", "only text", subject="Plain")

    email = message_from_bytes(render_email(message, EMAIL_FROM).data, policy=policy.default)

    assert email.get_content_type() == "text/plain"
    assert email.get_content().strip() == "only text"
    assert delivery_id_from_message_id(str(email["Message-ID"])) == 3


def _part(mail: EmailMessage, subtype: str) -> str:
    part = mail.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}"
    content = part.get_content()
    assert isinstance(content, str)
    return content


def _assert_no_password(results: list[SendResult]) -> None:
    for result in results:
        assert PASSWORD not in repr(result)
        assert QUOTED_PASSWORD not in repr(result)


def test_the_envelope_sender_is_the_return_path_and_verp_gives_each_message_its_own(
    smtp_server: SmtpServer,
) -> None:
    fixed = SmtpProvider(smtp_server.url, EMAIL_FROM, 5.0, return_path="bounces@bank.example")
    send(fixed, [email_to(1, "ann@example.com")])
    [ann] = smtp_server.handler.to("ann@example.com")
    assert ann.mail_from == "bounces@bank.example"
    assert ann.message["From"].addresses[0].addr_spec == "no-reply@bank.example"  # the From stays as it is

    digests = {i: message_id_for(i, f"campaign-1:C{i}:email", EMAIL_FROM).split(".")[2][:10] for i in (2, 3)}
    for template in ("bounces+{id}@bank.example", "bounces+@bank.example"):
        verp = SmtpProvider(smtp_server.url, EMAIL_FROM, 5.0, return_path=template)
        send(verp, [email_to(2, "ben@example.com"), email_to(3, "cao@example.com")])
    ben, cao = smtp_server.handler.to("ben@example.com"), smtp_server.handler.to("cao@example.com")
    assert {m.mail_from for m in ben} == {f"bounces+2.{digests[2]}@bank.example"}
    assert {m.mail_from for m in cao} == {f"bounces+3.{digests[3]}@bank.example"}

    path = ReturnPath("bounces+{id}@bank.example")
    assert path.delivery_of(f"Bounces+2.{digests[2]}@Bank.Example") == (2, digests[2])
    assert path.delivery_of("bounces@bank.example") is None
    for bad in ("bounces", "bounces@{id}.bank.example", "a{id}b{id}@bank.example", "two words@bank.example"):
        with pytest.raises(InputError, match="email_return_path"):
            ReturnPath(bad)
