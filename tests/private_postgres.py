"""A PostgreSQL cluster of a test's own, which the test may crash and start again (the shared server is never
touched): initdb into a temporary folder, pg_ctl start, `pg_ctl -m immediate stop` for a crash."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.services import free_port, unavailable


def _binaries() -> Path | None:
    """The folder of initdb and pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """One cluster in `folder`, listening on 127.0.0.1:`port` (and a socket in `folder`)."""

    def __init__(self, binaries: Path, folder: Path, port: int) -> None:
        self.binaries = binaries
        self.folder = folder
        self.data = folder / "data"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.log = folder / "server.log"

    def _run(self, *argv: str) -> None:
        # initdb refuses to run as root: the cluster belongs to the postgres OS user then.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")

    def init(self) -> None:
        self._run(str(self.binaries / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        # fsync off: the test crashes the server process, never the machine, so the OS keeps what was written.
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.binaries / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-t", "120",
            "-w", "start",
        )  # fmt: skip

    def crash(self) -> None:
        """Stop at once, as a crash does: every connection is cut, nothing is checkpointed."""
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster, crashed and removed at the end; skips (fails when CI=true) without the
    PostgreSQL server binaries."""
    binaries = _binaries()
    if binaries is None or not (binaries / "pg_ctl").exists():
        unavailable("a private PostgreSQL", "no initdb and pg_ctl")
    assert binaries is not None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("a private PostgreSQL", "running as root without runuser")
    folder = Path(tempfile.mkdtemp(prefix="outreach-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        server = PrivatePostgres(binaries, folder, free_port())
        server.init()
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.crash()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
