"""Where inbound mail (bounces and replies) is read from: a Maildir on disk or a folder on an IMAP server.

`with open_mailbox(location, os.environ) as source:` a run reads `source.messages()` and calls `source.done(key)`
for each message it has filed, which moves it to `outreach-processed`: the next run sees only what is new or what
failed to be filed. The IMAP password comes only from `OUTREACH_IMAP_PASSWORD` and is never shown.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import mailbox
import os
import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import quote, unquote, urlsplit

from outreach.core.errors import OutreachError

PROCESSED_FOLDER = "outreach-processed"
DEFAULT_TIMEOUT = 30.0
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/:]*):.*@", re.IGNORECASE)


class MailboxError(OutreachError):
    """A mailbox that cannot be opened or read; the message is one line for the user and holds no password."""


class IncomingMail(NamedTuple):
    """One message as it sits in the mailbox: `key` names it for `MailSource.done`, `raw` is its exact bytes."""

    key: str
    raw: bytes


class MailSource(ABC):
    """A mailbox opened for one run, as a context manager: read `messages()`, call `done(key)` for each one filed.

    `description` names the mailbox for messages to the user (never with a password)."""

    description: str

    def open(self) -> None:
        """Connect, if the source needs to; `with` does it, and calling it again does nothing."""
        return None

    @abstractmethod
    def messages(self) -> Iterator[IncomingMail]:
        """The messages not yet moved aside, one at a time."""

    @abstractmethod
    def done(self, key: str) -> None:
        """Move one message to the processed folder so later runs do not see it again."""

    def close(self) -> None:
        """Finish the run (on IMAP: expunge what was moved by copying, log out)."""
        return None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.close()
        except MailboxError:
            if exc is None:
                raise

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


def open_mailbox(location: str, env: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> MailSource:
    """The mail source at `location`: a Maildir path, or `imap[s]://[user@]host[:port][/FOLDER]`.

    Checks the location at once; an IMAP source connects when entered (`with`). Raises MailboxError."""
    scheme, sep, _ = location.partition("://")
    if not sep:
        return MaildirSource(os.path.expanduser(location))
    if scheme.lower() in {"imap", "imaps"}:
        return ImapSource(location, env, timeout)
    raise MailboxError(f"cannot read mail from {mask_location(location)}: give a Maildir path or an imap(s):// URL")


def mask_location(location: str) -> str:
    """The location with any password in it replaced by `***`, for showing to the user."""
    return _URL_PASSWORD.sub(r"\1:***@", location)


class MaildirSource(MailSource):
    """A Maildir (`cur/`, `new/`, `tmp/`); filed messages go to its Maildir++ folder `.outreach-processed`."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.description = self.path
        if not os.path.isdir(self.path):
            raise MailboxError(f"no such directory: {self.path}")
        missing = [sub for sub in ("cur", "new", "tmp") if not os.path.isdir(os.path.join(self.path, sub))]
        if missing:
            raise MailboxError(f"{self.path} is not a Maildir (it has no {', '.join(s + '/' for s in missing)})")
        self._maildir = mailbox.Maildir(self.path, factory=None, create=False)
        self._files: dict[str, str] = {}
        self._processed: str | None = None

    def messages(self) -> Iterator[IncomingMail]:
        try:
            keys = sorted(self._maildir.keys())
        except OSError as exc:
            raise MailboxError(f"cannot read {self.path}: {exc}") from exc
        for key in keys:
            try:
                raw = self._maildir.get_bytes(key)
            except (KeyError, FileNotFoundError):  # taken by another reader since the listing
                continue
            yield IncomingMail(key, raw)

    def done(self, key: str) -> None:
        target = self._processed_folder()
        # A rename, so the message keeps its exact bytes, file name and flags, and is never in both places.
        try:
            for _ in range(2):
                name = self._files.get(key)
                with contextlib.suppress(FileNotFoundError):  # a mail client moved it from new/ to cur/: look again
                    if name is not None:
                        os.rename(os.path.join(self.path, name), os.path.join(target, name))
                        return
                self._scan()
        except OSError as exc:
            raise MailboxError(f"cannot move message {key} to {target}: {exc}") from exc
        raise MailboxError(f"message {key} is no longer in {self.path}")

    def _scan(self) -> None:
        """Map every message key to its file (`new/KEY` or `cur/KEY:2,FLAGS`), as `mailbox.Maildir` names them."""
        self._files = {}
        for sub in ("new", "cur"):
            for name in os.listdir(os.path.join(self.path, sub)):
                if not name.startswith("."):
                    self._files[name.split(self._maildir.colon)[0]] = os.path.join(sub, name)

    def _processed_folder(self) -> str:
        if self._processed is None:
            try:
                if PROCESSED_FOLDER not in self._maildir.list_folders():
                    self._maildir.add_folder(PROCESSED_FOLDER)
            except OSError as exc:
                raise MailboxError(f"cannot create the folder {PROCESSED_FOLDER} in {self.path}: {exc}") from exc
            self._processed = os.path.join(self.path, "." + PROCESSED_FOLDER)
        return self._processed


class ImapSource(MailSource):
    """A folder on an IMAP server (INBOX unless the URL names one); filed messages move to `outreach-processed`."""

    def __init__(self, url: str, env: Mapping[str, str], timeout: float) -> None:
        try:
            parts = urlsplit(url)
            port = None if parts.password is not None else parts.port  # the error would quote the password
        except ValueError:
            raise MailboxError(f"cannot read the IMAP URL {mask_location(url)} (a bad host or port?)") from None
        if parts.password is not None:
            raise MailboxError(
                f"the IMAP URL {mask_location(url)} holds a password: "
                "remove it from the URL and set OUTREACH_IMAP_PASSWORD instead"
            )
        if not parts.hostname:
            raise MailboxError(f"the IMAP URL {url} names no host")
        self.secure = parts.scheme.lower() == "imaps"
        self.host = parts.hostname
        self.port = port or (993 if self.secure else 143)
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.user = unquote(parts.username) if parts.username else env.get("OUTREACH_IMAP_USER", "")
        self.timeout = timeout
        self.description = f"{parts.scheme.lower()}://{quote(self.user, safe='')}@{self.host}:{self.port}/{self.folder}"
        if not self.user:
            raise MailboxError(f"no IMAP user for {self.description}: put it in the URL or set OUTREACH_IMAP_USER")
        self._password = env.get("OUTREACH_IMAP_PASSWORD", "")
        if not self._password:
            raise MailboxError(f"set OUTREACH_IMAP_PASSWORD to the password of {self.user} on {self.host}")
        self._conn: imaplib.IMAP4 | None = None
        self._can_move = False
        self._processed_ready = False
        self._expunge = False

    def open(self) -> None:
        if self._conn is not None:
            return
        try:
            if self.secure:
                context = ssl.create_default_context()
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=self.timeout)
            else:
                conn = imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"cannot reach the IMAP server of {self.description}: {self._mask(exc)}") from None
        try:
            try:
                conn.login(_quoted(self.user), self._password)
            except (OSError, UnicodeError, imaplib.IMAP4.error) as exc:
                raise MailboxError(f"IMAP login as {self.user} failed at {self.host}: {self._mask(exc)}") from None
            capabilities = self._call("CAPABILITY", conn.capability)  # asked again: servers add MOVE once logged in
            self._can_move = "MOVE" in str(capabilities[-1], "ascii", "replace").upper().split()
            self._call(f"SELECT {self.folder}", conn.select, _mailbox_name(self.folder))
        except MailboxError:
            _logout(conn)
            raise
        self._conn = conn

    def messages(self) -> Iterator[IncomingMail]:
        conn = self._connection()
        # UNDELETED, not ALL: a message copied and flagged \Deleted before a dropped connection is already filed.
        found = self._call("UID SEARCH", conn.uid, "SEARCH", "UNDELETED")
        for uid in b" ".join(item for item in found if isinstance(item, bytes)).split():
            key = uid.decode("ascii")
            fetched = self._call("UID FETCH", conn.uid, "FETCH", key, "(BODY.PEEK[])")
            bodies = [item[1] for item in fetched if isinstance(item, tuple) and b"BODY[]" in item[0].upper()]
            if bodies:  # else another client expunged it meanwhile
                yield IncomingMail(key, bodies[0])

    def done(self, key: str) -> None:
        conn = self._connection()
        target = _mailbox_name(PROCESSED_FOLDER)
        if not self._processed_ready:
            if not any(self._call("LIST", conn.list, '""', target)):
                self._call(f"CREATE {PROCESSED_FOLDER}", conn.create, target)
            self._processed_ready = True
        if self._can_move:
            self._call("UID MOVE", conn.uid, "MOVE", key, target)
        else:
            self._call("UID COPY", conn.uid, "COPY", key, target)
            self._call("UID STORE", conn.uid, "STORE", key, "+FLAGS", r"(\Deleted)")
            self._expunge = True

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._expunge:
                self._call("EXPUNGE", conn.expunge)
            self._call("CLOSE", conn.close)
        finally:
            _logout(conn)

    def _connection(self) -> imaplib.IMAP4:
        self.open()
        assert self._conn is not None
        return self._conn

    def _call(self, what: str, command: Callable[..., tuple[str, list[Any]]], *args: str) -> list[Any]:
        """Run one IMAP command; anything but OK becomes a MailboxError naming `what` and the server's words."""
        try:
            status, data = command(*args)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"IMAP {what} failed on {self.description}: {self._mask(exc)}") from None
        if status != "OK":
            said = b" ".join(item for item in data if isinstance(item, bytes)).decode("utf-8", "replace")
            raise MailboxError(f"IMAP {what} refused by {self.description}: {status} {self._mask(said)}")
        return data

    def _mask(self, error: object) -> str:
        """An error's text on one line, without the password (imaplib's login error holds the server's bytes)."""
        args = error.args if isinstance(error, BaseException) else ()
        text = args[0].decode("utf-8", "replace") if len(args) == 1 and isinstance(args[0], bytes) else str(error)
        return " ".join(text.replace(self._password, "***").split())


def _logout(conn: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError, imaplib.IMAP4.error):
        conn.logout()


def _quoted(text: str) -> str:
    """An IMAP quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox_name(name: str) -> str:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    out: list[str] = []
    pending = ""
    for char in name + "\0":  # the NUL flushes the last run of non-ASCII characters
        if " " <= char <= "~" or char == "\0":
            if pending:
                encoded = base64.b64encode(pending.encode("utf-16-be")).decode("ascii")
                out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
                pending = ""
            out.append("&-" if char == "&" else char.strip("\0"))
        else:
            pending += char
    return _quoted("".join(out))
