"""A real IMAP4rev1 server on loopback, keeping its folders in memory, for testing `outreach.inbound.mail_sources`.

It speaks exactly what the IMAP source sends through imaplib: CAPABILITY (with or without MOVE), LOGIN, LIST,
CREATE, SELECT, UID SEARCH, UID FETCH (BODY.PEEK[]), UID MOVE, UID COPY, UID STORE, EXPUNGE, CLOSE, LOGOUT and
NOOP. Tests put messages into `folders` and afterwards look at what moved where, and at `commands` (the command
names received, never their arguments, so no password is kept).
"""

from __future__ import annotations

import fnmatch
import re
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\([^)]*\))|(\S+)')


@dataclass
class StoredMessage:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)


@dataclass
class Folder:
    messages: list[StoredMessage] = field(default_factory=list)
    next_uid: int = 1

    def add(self, raw: bytes, flags: set[str] | None = None) -> int:
        uid = self.next_uid
        self.next_uid += 1
        self.messages.append(StoredMessage(uid, raw, set(flags or ())))
        return uid

    def raws(self) -> list[bytes]:
        return [m.raw for m in self.messages]


class ImapServer:
    """The server: `with ImapServer(user, password, move=False) as server:` then connect to `server.port`."""

    def __init__(self, user: str = "alice", password: str = "s3cret", *, move: bool = True) -> None:
        self.user = user
        self.password = password
        self.move = move
        self.folders: dict[str, Folder] = {"INBOX": Folder()}
        self.commands: list[str] = []
        self.lock = threading.Lock()
        self._server = _TcpServer(("127.0.0.1", 0), _Session)
        self._server.imap = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> ImapServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    imap: ImapServer


class _Session(socketserver.StreamRequestHandler):
    """One client connection: reads tagged commands and answers them against the shared folders."""

    server: _TcpServer
    disable_nagle_algorithm = True  # answers go out line by line; do not wait for the client's delayed ACK

    def handle(self) -> None:
        self.imap = self.server.imap
        self.logged_in = False
        self.selected: str | None = None
        self.send("* OK IMAP4rev1 test server ready")
        while line := self.rfile.readline():
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            words = _words(rest)
            if not words:
                self.send(f"{tag.decode()} BAD no command")
                continue
            name, args = words[0].upper(), words[1:]
            if name == "UID" and args:
                name, args = f"UID {args[0].upper()}", args[1:]
            with self.imap.lock:
                self.imap.commands.append(name)
                if not self.dispatch(tag.decode(), name, args):
                    return

    def dispatch(self, tag: str, name: str, args: list[str]) -> bool:
        """Answer one command; False when the connection is to be closed (LOGOUT)."""
        always: dict[str, Callable[[list[str]], str]] = {
            "CAPABILITY": self.capability,
            "NOOP": lambda args: "OK NOOP completed",
            "LOGIN": self.login,
        }
        authenticated = {"LIST": self.list_folders, "CREATE": self.create, "SELECT": self.select}
        selected = {
            "UID SEARCH": self.search,
            "UID FETCH": self.fetch,
            "UID COPY": self.copy,
            "UID STORE": self.store,
            "EXPUNGE": lambda args: self.expunge(report=True),
            "CLOSE": self.close,
        }
        if self.imap.move:
            selected["UID MOVE"] = self.move
        if name == "LOGOUT":
            self.send("* BYE logging out")
            self.send(f"{tag} OK LOGOUT completed")
            return False
        command = always.get(name) or (
            (authenticated.get(name) or (selected.get(name) if self.selected else None)) if self.logged_in else None
        )
        if command is None:
            self.send(f"{tag} BAD {name} unknown or not allowed now")
        else:
            self.send(f"{tag} {command(args)}")
        return True

    def send(self, line: str | bytes) -> None:
        self.wfile.write((line.encode() if isinstance(line, str) else line) + b"\r\n")

    def capability(self, args: list[str]) -> str:
        self.send("* CAPABILITY IMAP4rev1" + (" MOVE" if self.imap.move else ""))
        return "OK CAPABILITY completed"

    def login(self, args: list[str]) -> str:
        if args == [self.imap.user, self.imap.password]:
            self.logged_in = True
            return "OK LOGIN completed"
        return "NO [AUTHENTICATIONFAILED] Authentication failed."

    def list_folders(self, args: list[str]) -> str:
        pattern = args[1].replace("%", "*")
        for name in sorted(self.imap.folders):
            if fnmatch.fnmatchcase(name, pattern):
                self.send(f'* LIST (\\HasNoChildren) "/" "{name}"')
        return "OK LIST completed"

    def create(self, args: list[str]) -> str:
        if args[0] in self.imap.folders:
            return "NO [ALREADYEXISTS] Mailbox already exists"
        self.imap.folders[args[0]] = Folder()
        return "OK CREATE completed"

    def select(self, args: list[str]) -> str:
        folder = self.imap.folders.get(args[0])
        if folder is None:
            self.selected = None
            return "NO [NONEXISTENT] Mailbox doesn't exist"
        self.selected = args[0]
        self.send(r"* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)")
        self.send(f"* {len(folder.messages)} EXISTS")
        self.send("* 0 RECENT")
        self.send("* OK [UIDVALIDITY 1] UIDs valid")
        self.send(f"* OK [UIDNEXT {folder.next_uid}] Predicted next UID")
        return "OK [READ-WRITE] SELECT completed"

    @property
    def folder(self) -> Folder:
        assert self.selected is not None
        return self.imap.folders[self.selected]

    def matching(self, uid_set: str) -> list[tuple[int, StoredMessage]]:
        """(sequence number, message) for each message whose UID is in the set (`1,3:5,7:*`)."""
        messages = self.folder.messages
        top = max((m.uid for m in messages), default=0)
        wanted: set[int] = set()
        for piece in uid_set.split(","):
            low, _, high = piece.partition(":")
            first, last = (top if low == "*" else int(low)), (top if high == "*" else int(high or low))
            wanted.update(range(min(first, last), max(first, last) + 1))
        return [(seq, m) for seq, m in enumerate(messages, 1) if m.uid in wanted]

    def search(self, args: list[str]) -> str:
        criterion = " ".join(args).upper()
        if criterion not in {"ALL", "UNDELETED", "DELETED"}:
            return f"BAD search criterion {criterion} not supported"
        uids = [
            str(m.uid)
            for m in self.folder.messages
            if criterion == "ALL" or (criterion == "DELETED") == ("\\Deleted" in m.flags)
        ]
        self.send(" ".join(["* SEARCH", *uids]))
        return "OK SEARCH completed"

    def fetch(self, args: list[str]) -> str:
        if len(args) != 2 or args[1].upper() not in {"(BODY.PEEK[])", "BODY.PEEK[]"}:
            return "BAD only UID FETCH set (BODY.PEEK[]) is supported"
        for seq, message in self.matching(args[0]):
            head = f"* {seq} FETCH (UID {message.uid} BODY[] {{{len(message.raw)}}}".encode()
            self.send(head)
            self.wfile.write(message.raw)
            self.send(b")")
        return "OK FETCH completed"

    def copy(self, args: list[str]) -> str:
        target = self.imap.folders.get(args[1])
        if target is None:
            return "NO [TRYCREATE] No such target mailbox"
        for _, message in self.matching(args[0]):
            target.add(message.raw, message.flags - {"\\Deleted"})
        return "OK COPY completed"

    def move(self, args: list[str]) -> str:
        target = self.imap.folders.get(args[1])
        if target is None:
            return "NO [TRYCREATE] No such target mailbox"
        moved = self.matching(args[0])
        for seq, message in reversed(moved):
            target.add(message.raw, message.flags)
            self.folder.messages.remove(message)
            self.send(f"* {seq} EXPUNGE")
        return "OK MOVE completed"

    def store(self, args: list[str]) -> str:
        mode = args[1].upper().removesuffix(".SILENT")
        flags = set(args[2].strip("()").split())
        if mode not in {"FLAGS", "+FLAGS", "-FLAGS"}:
            return f"BAD STORE {args[1]} not supported"
        for seq, message in self.matching(args[0]):
            if mode == "FLAGS":
                message.flags = set(flags)
            elif mode == "+FLAGS":
                message.flags |= flags
            else:
                message.flags -= flags
            if not args[1].upper().endswith(".SILENT"):
                self.send(f"* {seq} FETCH (UID {message.uid} FLAGS ({' '.join(sorted(message.flags))}))")
        return "OK STORE completed"

    def expunge(self, *, report: bool) -> str:
        messages = self.folder.messages
        for seq in range(len(messages), 0, -1):
            if "\\Deleted" in messages[seq - 1].flags:
                del messages[seq - 1]
                if report:
                    self.send(f"* {seq} EXPUNGE")
        return "OK EXPUNGE completed"

    def close(self, args: list[str]) -> str:
        self.expunge(report=False)
        self.selected = None
        return "OK CLOSE completed"


def _words(line: bytes) -> list[str]:
    """The words of a command line: atoms, parenthesised lists as they are, quoted strings unquoted."""
    words = []
    for quoted, parenthesised, atom in (match.groups() for match in _TOKEN.finditer(line)):
        if quoted is not None:
            words.append(re.sub(r"\\(.)", r"\1", quoted.decode()))
        else:
            words.append((parenthesised or atom).decode())
    return words
