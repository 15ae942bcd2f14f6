"""How the library hands ledger row ids to whatever delivers them (Dramatiq in `workers/`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Transport(Protocol):
    """Carries ids of ledger rows to the workers; never the messages themselves."""

    def enqueue(self, ids: Sequence[int], delay_ms: int = 0) -> None: ...


def enqueue_in_batches(transport: Transport, ids: Sequence[int], batch_size: int, delay_ms: int = 0) -> None:
    for start in range(0, len(ids), batch_size):
        transport.enqueue(ids[start : start + batch_size], delay_ms)
