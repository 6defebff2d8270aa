"""How many old rows retention deletes per transaction: as many as fit a time budget, never more than a cap.

On SQLite a delete transaction holds the log's write lock and the service's writers wait for it: on a large log a
fixed batch of 5,000 rows took 100-460 ms (the request-id index's entries are scattered over the whole file).
`BatchSize` measures each transaction and moves the next batch towards the store's budget: it doubles while a
batch takes less than half of it and halves as soon as one takes more. `pause_s` is how long to leave the log
alone afterwards, so that the writers have it most of the time. PostgreSQL locks only the deleted rows, so its
store sets no budget (every batch is the cap) and a shorter pause: there the pause only spares the server's CPU
and disk. Each store says which (`PRUNE_BUDGET_S`, `PRUNE_DUTY`).
"""

from __future__ import annotations

from dataclasses import dataclass

BUDGET_S = 0.005  # target time of one delete transaction that locks the writers out (SQLite)
FIRST = 100  # rows per table in the first batch
DUTY = 0.1  # the share of the time retention may hold SQLite's write lock (`pause_s`)


@dataclass
class BatchSize:
    """The next batch's size (rows per table), moved by each batch's measured time; no budget: always the cap."""

    cap: int
    budget_s: float | None = BUDGET_S
    rows: int = FIRST

    def __post_init__(self) -> None:
        self.rows = max(1, min(self.rows if self.budget_s is not None else self.cap, self.cap))

    def took(self, seconds: float) -> None:
        """The last batch (of `rows`) took `seconds`."""
        if self.budget_s is None:
            return
        if seconds > self.budget_s:
            self.rows = max(1, self.rows // 2)
        elif seconds < self.budget_s / 2:
            self.rows = min(self.cap, self.rows * 2)

    @staticmethod
    def pause_s(seconds: float, floor_s: float = 0.0, duty: float = DUTY) -> float:
        """How long to wait after a batch that took `seconds`, so that retention takes `duty` of the time at most."""
        return max(floor_s, seconds * (1 - duty) / duty)
