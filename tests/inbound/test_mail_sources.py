"""Reading inbound mail from a Maildir on disk and from a real IMAP server on loopback."""

from __future__ import annotations

import mailbox
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from outreach.inbound.mail_sources import IncomingMail, MailboxError, mask_location, open_mailbox
from tests.imap_server import Folder, ImapServer

PASSWORD = "hunter2-Secret!"
ENV = {"OUTREACH_IMAP_PASSWORD": PASSWORD}


def email_bytes(n: int, *, crlf: bool = True) -> bytes:
    """Reply number n, with CRLF line ends as IMAP serves it, or LF as a Maildir stores it."""
    msg = EmailMessage()
    msg["From"] = f"customer{n}@mail.example.cn"
    msg["To"] = "service@bank.example"
    msg["Subject"] = f"回复 {n}"
    msg["Message-ID"] = f"<reply-{n}@mail.example.cn>"
    msg["In-Reply-To"] = f"<outreach.{n}.abcdef0123@bank.example>"
    msg.set_content(f"第 {n} 封回信\n")
    return msg.as_bytes().replace(b"\n", b"\r\n") if crlf else msg.as_bytes()


def read_all(location: str, env: dict[str, str], done: set[int] | None = None) -> list[IncomingMail]:
    """One run over the mailbox: every message read, those whose number is in `done` moved aside."""
    with open_mailbox(location, env) as source:
        mails = list(source.messages())
        for mail in mails:
            number = int(mail.raw.split(b"<reply-")[1].split(b"@")[0])
            if done is None or number in done:
                source.done(mail.key)
    return mails


# --- Maildir ---


def lf(n: int) -> bytes:
    return email_bytes(n, crlf=False)


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    path = tmp_path / "Maildir"
    box = mailbox.Maildir(str(path), create=True)
    box.add(lf(1))  # new/
    seen = mailbox.MaildirMessage(lf(2))
    seen.set_subdir("cur")
    seen.add_flag("S")
    box.add(seen)  # cur/ with :2,S
    box.add(lf(3))
    return path


def test_maildir_reads_new_and_cur_and_moves_what_is_done(maildir: Path) -> None:
    mails = read_all(str(maildir), {}, done={1, 2})
    assert sorted(m.raw for m in mails) == sorted(lf(n) for n in (1, 2, 3))
    processed = maildir / ".outreach-processed"
    assert (processed / "maildirfolder").exists()
    assert sorted(p.read_bytes() for p in processed.glob("*/*")) == sorted([lf(1), lf(2)])
    assert [p.name.endswith(":2,S") for p in (processed / "cur").iterdir()] == [True]

    again = read_all(str(maildir), {})
    assert [m.raw for m in again] == [lf(3)]
    assert read_all(str(maildir), {}) == []
    assert len(list(processed.glob("*/*"))) == 3


def test_maildir_message_not_done_stays(maildir: Path) -> None:
    read_all(str(maildir), {}, done=set())
    assert len(read_all(str(maildir), {}, done=set())) == 3


def test_maildir_message_moved_to_cur_meanwhile_is_still_found(maildir: Path) -> None:
    with open_mailbox(str(maildir), {}) as source:
        mails = list(source.messages())
        source.done(mails[0].key)  # the processed folder exists and the file names are known
        for path in (maildir / "new").iterdir():  # a mail client marks the rest as seen
            path.rename(maildir / "cur" / (path.name + ":2,S"))
        for mail in mails[1:]:
            source.done(mail.key)
        with pytest.raises(MailboxError, match="no longer"):
            source.done(mails[0].key)
    assert list((maildir / "new").iterdir()) == list((maildir / "cur").iterdir()) == []


def test_not_a_maildir(tmp_path: Path) -> None:
    with pytest.raises(MailboxError, match="no such directory"):
        open_mailbox(str(tmp_path / "missing"), {})
    (tmp_path / "cur").mkdir()
    with pytest.raises(MailboxError, match="not a Maildir"):
        open_mailbox(str(tmp_path), {})
    with pytest.raises(MailboxError, match="imap"):
        open_mailbox("pop3://mail.example.cn", {})


# --- IMAP ---


@pytest.fixture(params=[True, False], ids=["move", "copy-store-expunge"])
def imap(request: pytest.FixtureRequest) -> Iterator[ImapServer]:
    with ImapServer("alice@bank.example", PASSWORD, move=request.param) as server:
        for n in (1, 2, 3):
            server.folders["INBOX"].add(email_bytes(n))
        yield server


def url(server: ImapServer, folder: str = "INBOX") -> str:
    return f"imap://alice%40bank.example@127.0.0.1:{server.port}/{folder}"


def test_imap_reads_and_moves_what_is_done(imap: ImapServer) -> None:
    mails = read_all(url(imap), ENV, done={1, 3})
    assert [m.raw for m in mails] == [email_bytes(n) for n in (1, 2, 3)]
    assert imap.folders["INBOX"].raws() == [email_bytes(2)]
    assert imap.folders["outreach-processed"].raws() == [email_bytes(1), email_bytes(3)]
    assert all(m.flags == set() for m in imap.folders["outreach-processed"].messages)
    if imap.move:
        assert "UID MOVE" in imap.commands and "UID COPY" not in imap.commands
    else:
        assert {"UID COPY", "UID STORE", "EXPUNGE"} <= set(imap.commands) and "UID MOVE" not in imap.commands
    assert imap.commands.count("CREATE") == 1

    again = read_all(url(imap), ENV)
    assert [m.raw for m in again] == [email_bytes(2)]
    assert read_all(url(imap), ENV) == []
    assert len(imap.folders["outreach-processed"].messages) == 3
    assert imap.commands.count("CREATE") == 1


def test_imap_messages_not_done_stay_unread(imap: ImapServer) -> None:
    read_all(url(imap), ENV, done=set())
    assert [m.flags for m in imap.folders["INBOX"].messages] == [set(), set(), set()]
    assert len(read_all(url(imap), ENV, done=set())) == 3
    assert "outreach-processed" not in imap.folders


def test_imap_skips_messages_already_copied_and_flagged(imap: ImapServer) -> None:
    imap.folders["INBOX"].messages[0].flags.add("\\Deleted")  # copied, then the connection dropped
    assert len(read_all(url(imap), ENV, done=set())) == 2


def test_imap_user_from_env_default_folder_and_named_folders(imap: ImapServer) -> None:
    env = {**ENV, "OUTREACH_IMAP_USER": "alice@bank.example"}
    assert len(read_all(f"imap://127.0.0.1:{imap.port}", env, done=set())) == 3
    bounces = imap.folders["&kABP4Q-"] = Folder()  # 退信 ("bounces") in IMAP's modified UTF-7 (RFC 3501)
    bounces.add(email_bytes(4))
    mails = read_all(f"imap://127.0.0.1:{imap.port}/%E9%80%80%E4%BF%A1", env)
    assert [m.raw for m in mails] == [email_bytes(4)]
    assert bounces.messages == [] and len(imap.folders["INBOX"].messages) == 3


def test_imap_wrong_password(imap: ImapServer) -> None:
    with pytest.raises(MailboxError) as caught, open_mailbox(url(imap), {"OUTREACH_IMAP_PASSWORD": "wrong-pw"}):
        pass
    assert "login" in str(caught.value).lower() and "wrong-pw" not in str(caught.value)
    assert "AUTHENTICATIONFAILED" in str(caught.value)


def test_imap_password_in_url_is_refused() -> None:
    with pytest.raises(MailboxError, match="OUTREACH_IMAP_PASSWORD") as caught:
        open_mailbox(f"imaps://alice:{PASSWORD}@imap.bank.example/INBOX", ENV)
    assert PASSWORD not in str(caught.value) and "alice:***@" in str(caught.value)
    assert mask_location(f"imaps://alice:{PASSWORD}@h/INBOX") == "imaps://alice:***@h/INBOX"
    assert mask_location("imaps://a@bank.example:p@ss/w@h:993/X") == "imaps://a@bank.example:***@h:993/X"
    assert mask_location("imaps://a@bank.example@h:993/INBOX") == "imaps://a@bank.example@h:993/INBOX"
    for location in ("imaps://alice:Zq9x/secret@h/INBOX", "imaps://alice:Zq9x/secret@[::1/INBOX", "imap://[::1"):
        with pytest.raises(MailboxError) as caught:
            open_mailbox(location, ENV)
        assert "Zq9x" not in str(caught.value) and "secret" not in str(caught.value)


def test_imap_missing_credentials_and_folder(imap: ImapServer) -> None:
    with pytest.raises(MailboxError, match="OUTREACH_IMAP_PASSWORD"):
        open_mailbox(url(imap), {})
    with pytest.raises(MailboxError, match="OUTREACH_IMAP_USER"):
        open_mailbox(f"imap://127.0.0.1:{imap.port}/INBOX", ENV)
    with pytest.raises(MailboxError, match="SELECT Archive") as caught, open_mailbox(url(imap, "Archive"), ENV):
        pass
    assert "NONEXISTENT" in str(caught.value)


def test_imap_unreachable_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        source = open_mailbox(f"imap://alice@127.0.0.1:{port}/INBOX", ENV)
        assert PASSWORD not in repr(source)
        with pytest.raises(MailboxError, match="cannot reach"), source:
            pass


def test_imap_error_in_the_run_still_finishes_the_moves(imap: ImapServer) -> None:
    with pytest.raises(RuntimeError, match="filing failed"), open_mailbox(url(imap), ENV) as source:
        first = next(source.messages())
        source.done(first.key)
        raise RuntimeError("filing failed")
    assert imap.folders["INBOX"].raws() == [email_bytes(2), email_bytes(3)]
    assert imap.folders["outreach-processed"].raws() == [email_bytes(1)]
