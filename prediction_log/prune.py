"""`make prune`: delete prediction-log rows older than N days, in bounded batches, beside a running service.

    python -m prediction_log.prune --days 30 [--log-url URL | --log-dir DIR] [--batch 5000]

Each batch is one short transaction (at most `--batch` rows per table), so the service's writers wait
for a few milliseconds at most; a SQLite log's WAL is checkpointed afterwards. The service does the same on
its own when PREDICTION_LOG_RETENTION_DAYS is set. Exit 0 with the count of deleted rows, 2 when the log
cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prediction_log.location import LocationError, LogLocation, resolve
from prediction_log.writer import PRUNE_BATCH, open_store

PAUSE_S = 0.05  # between batches: the service's group commits get the lock in between


def prune(location: LogLocation, days: float, batch: int = PRUNE_BATCH) -> int:
    """Delete every row older than `days`; returns how many were deleted."""
    store = open_store(location)
    store.open()
    try:
        before = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")
        total = 0
        while True:
            deleted = store.prune(before, batch)
            total += deleted
            if deleted == 0:
                break
            time.sleep(PAUSE_S)
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
    parser.add_argument("--batch", type=int, default=PRUNE_BATCH, help="rows per table and transaction")
    args = parser.parse_args(argv)
    if args.days < 0 or args.batch < 1:
        parser.error("--days must be >= 0 and --batch >= 1")
    try:
        location = resolve(url=args.log_url, directory=args.log_dir)
        if location.path is not None and not location.path.is_file():
            print(f"prune: no prediction log at {location.path}", file=sys.stderr)
            return 2
        store = open_store(location)
        deleted = prune(location, args.days, args.batch)
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
