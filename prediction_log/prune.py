"""`make prune`: delete prediction-log rows older than N days, in bounded batches, beside a running service.

    python -m prediction_log.prune --days 30 [--log-url URL | --log-dir DIR] [--batch 5000] [--budget-ms 5]

On SQLite each batch is one short transaction sized to take about `--budget-ms` (prediction_log/batches.py; at
most `--batch` rows per table), followed by a pause nine times as long, so the service's writers wait a few
milliseconds at most and hold the lock nine tenths of the time; on PostgreSQL, which locks only the deleted rows,
each batch is `--batch` rows and the pause as long as the batch took. A SQLite log's WAL is checkpointed after every
batch: otherwise the pages the deletes wrote are copied back by whichever commit passes SQLite's auto-checkpoint
threshold, most often one of the service's, which then waits for the copy and its fsync (p99 x13 measured).
The service does the same on its own when PREDICTION_LOG_RETENTION_DAYS is set. Exit 0 with the count of
deleted rows, 2 when the log cannot be reached. Measured on a 10-million-row log beside a live server:
bench/prune-under-load/.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prediction_log.batches import BUDGET_S, BatchSize
from prediction_log.location import LocationError, LogLocation, resolve
from prediction_log.writer import PRUNE_BATCH, open_store

PAUSE_S = 0.01  # between batches at least: the service's group commits get the lock in between


def prune(location: LogLocation, days: float, batch: int = PRUNE_BATCH, budget_s: float | None = None) -> int:
    """Delete every row older than `days` in batches of at most `batch` rows per table, each sized to take about
    `budget_s` (default: the store's own budget; PostgreSQL has none); returns how many were deleted."""
    store = open_store(location)
    store.open()
    size = BatchSize(batch, budget_s if budget_s is not None and store.PRUNE_BUDGET_S is not None
                     else store.PRUNE_BUDGET_S)
    try:
        before = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")
        total = 0
        while True:
            started = time.perf_counter()
            deleted = store.prune(before, size.rows)
            took = time.perf_counter() - started
            total += deleted
            if deleted == 0:
                break
            size.took(took)
            store.checkpoint()  # the pages this batch wrote: a checkpoint of ours, not in a commit of the service's
            time.sleep(BatchSize.pause_s(took, PAUSE_S, store.PRUNE_DUTY))
        store.checkpoint()
        return total
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, required=True, help="keep this many days of rows")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--log-url", help="default: PREDICTION_LOG_URL, else PREDICTION_LOG_DIR, else the default")
    where.add_argument("--log-dir", type=Path)
    parser.add_argument("--batch", type=int, default=PRUNE_BATCH, help="rows per table and transaction at most")
    parser.add_argument("--budget-ms", type=float, default=BUDGET_S * 1000,
                        help="SQLite: the time one delete transaction should hold the lock (the batch size follows "
                             "it); PostgreSQL's deletes lock only their rows and always take --batch")
    args = parser.parse_args(argv)
    if args.days < 0 or args.batch < 1 or args.budget_ms <= 0:
        parser.error("--days must be >= 0, --batch >= 1 and --budget-ms > 0")
    try:
        location = resolve(url=args.log_url, directory=args.log_dir)
        if location.path is not None and not location.path.is_file():
            print(f"prune: no prediction log at {location.path}", file=sys.stderr)
            return 2
        store = open_store(location)
        deleted = prune(location, args.days, args.batch, args.budget_ms / 1000)
    except LocationError as exc:
        print(f"prune: {exc}", file=sys.stderr)
        return 2
    except store.errors as exc:
        print(f"prune: cannot prune {location}: {exc}", file=sys.stderr)
        return 2
    print(f"prune: deleted {deleted} rows older than {args.days:g} days from {location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
