"""How many old rows retention deletes per transaction: as many as fit a time budget, never more than a cap.

A delete transaction holds the log's write lock (SQLite) or its rows' locks, and the service's writers wait for
it: on a large log a fixed batch of 5,000 rows took 100-460 ms (the request-id index's entries are scattered
over the whole file). `BatchSize` measures each transaction and moves the next batch towards the budget:
it doubles while a batch takes less than half of it and halves as soon as one takes more. `pause_s` is how
long to leave the lock alone afterwards, so that the writers hold it most of the time.
"""

from __future__ import annotations

from dataclasses import dataclass

BUDGET_S = 0.005  # target time of one delete transaction
FIRST = 100  # rows per table in the first batch
DUTY = 0.1  # the share of the time retention may hold the lock (`pause_s`)


@dataclass
class BatchSize:
    """The next batch's size (rows per table), moved by each batch's measured time."""

    cap: int
    rows: int = FIRST
    budget_s: float = BUDGET_S

    def __post_init__(self) -> None:
        self.rows = max(1, min(self.rows, self.cap))

    def took(self, seconds: float) -> None:
        """The last batch (of `rows`) took `seconds`."""
        if seconds > self.budget_s:
            self.rows = max(1, self.rows // 2)
        elif seconds < self.budget_s / 2:
            self.rows = min(self.cap, self.rows * 2)

    @staticmethod
    def pause_s(seconds: float, floor_s: float = 0.0) -> float:
        """How long to wait after a batch that took `seconds`: retention holds the lock DUTY of the time at most."""
        return max(floor_s, seconds * (1 - DUTY) / DUTY)
