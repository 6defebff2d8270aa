"""The SQL that differs between the log's two stores, SQLite and PostgreSQL; everything else is written once.

Each statistic is asked of the store so that memory never grows with the window: a count or a sum comes back
as one number, exact percentiles as a few rows per group (PostgreSQL's `percentile_cont`; on SQLite the rows
at the two ranks around each percentile, found with ROW_NUMBER over a sort SQLite spills to disk), and both
interpolate linearly between those ranks as numpy's default does: the same numbers from either store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Percentiles = dict[Any, dict[float, float]]  # group -> percentile (0-100) -> value


@dataclass(frozen=True)
class Dialect:
    kind: str
    mark: str  # the driver's placeholder
    modulo: str  # the % operator as the driver wants it in a statement with parameters

    def epoch_bucket(self, column: str, seconds: int) -> str:
        """The start of the `seconds`-wide bucket (since the epoch, UTC) holding the time in `column`, in seconds."""
        if self.kind == "sqlite":
            return f"(unixepoch({column}) / {int(seconds)}) * {int(seconds)}"
        return f"(floor(extract(epoch FROM {column}) / {int(seconds)}) * {int(seconds)})::bigint"

    def number(self, column: str) -> str:
        """A JSON column holding a number, as a float."""
        return f"CAST({column} AS REAL)" if self.kind == "sqlite" else f"({column})::float8"

    def field(self, column: str) -> str:
        """A JSON object's field as text; the field's name is a parameter (`field_arg`)."""
        return f"json_extract({column}, {self.mark})" if self.kind == "sqlite" else f"{column} ->> {self.mark}"

    def field_arg(self, name: str) -> str:
        return f"$.{name}" if self.kind == "sqlite" else name

    def percentiles(self, execute: Any, value: str, source: str, args: tuple, percents: tuple[float, ...],
                    counts: dict[Any, int], group: str | None = None) -> Percentiles:
        """Exact percentiles (linear interpolation between ranks) of `value` over `source` (`FROM ... WHERE ...`):
        of all rows (key None) and, with a `group` expression, of each group. `counts` holds how many rows there
        are (None: all; with `group`, each group's too): SQLite needs them to know which ranks to fetch.
        `execute(sql, args)` returns the rows."""
        quantiles = [p / 100 for p in percents]
        if self.kind == "postgresql":
            select = f"percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY {value}) {source}"
            rows = execute(f"SELECT NULL, {select}", (quantiles, *args))
            if group:
                rows += execute(f"SELECT {group}, {select} GROUP BY 1", (quantiles, *args))
            return {g: dict(zip(percents, map(float, values), strict=True)) for g, values in rows if values}
        wanted = {g: _ranks(n, quantiles) for g, n in counts.items() if n}
        if not wanted:
            return {}
        overall = ", ".join(str(rank) for rank in sorted(wanted.get(None, ())))
        clauses = [f"i IN ({overall})"] if overall else []
        selected = f"NULL AS g, {value} AS x, ROW_NUMBER() OVER (ORDER BY {value}) - 1 AS i, 0 AS j"
        pairs = ", ".join(f"({g!r}, {rank})" for g, ranks in wanted.items() if g is not None for rank in ranks)
        if group and pairs:
            clauses.append(f"(g, j) IN (VALUES {pairs})")
            selected = (f"{group} AS g, {value} AS x, ROW_NUMBER() OVER (ORDER BY {value}) - 1 AS i, "
                        f"ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY {value}) - 1 AS j")
        at: dict[Any, dict[int, float]] = {}
        for g, i, j, x in execute(f"SELECT g, i, j, x FROM (SELECT {selected} {source}) WHERE "
                                  + " OR ".join(clauses), args):
            if i in wanted.get(None, ()):
                at.setdefault(None, {})[i] = float(x)
            if g is not None and j in wanted.get(g, ()):
                at.setdefault(g, {})[j] = float(x)
        return {g: {p: _interpolate(at[g], counts[g], q) for p, q in zip(percents, quantiles, strict=True)}
                for g in wanted}


def _ranks(count: int, quantiles: list[float]) -> set[int]:
    """The 0-based ranks linear interpolation reads for each quantile of `count` sorted values."""
    ranks = set()
    for q in quantiles:
        low = int((count - 1) * q)
        ranks.update((low, min(low + 1, count - 1)))
    return ranks


def _interpolate(values: dict[int, float], count: int, quantile: float) -> float:
    """PostgreSQL's percentile_cont (and numpy's default) from the values at ranks floor(h) and floor(h) + 1."""
    h = (count - 1) * quantile
    low = int(h)
    high = min(low + 1, count - 1)
    return values[low] + (h - math.floor(h)) * (values[high] - values[low])


DIALECTS = {"sqlite": Dialect("sqlite", "?", "%"), "postgresql": Dialect("postgresql", "%s", "%%")}
