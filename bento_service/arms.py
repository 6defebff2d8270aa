"""Which model answers a request: the champion, or the challenger (A/B), and whether the challenger shadows it.

Per task, `<TASK>_CHALLENGER` in the environment (e.g. `LOANS_CHALLENGER=ab:0.2` for a task `loans`):

- `off` (default): the champion answers everything; the challenger is loaded (GET /model lists it) but idle.
- `shadow`: the champion answers everything; the challenger predicts every request after the answer is
  ready, off the response's path, and its predictions are logged with arm "shadow", never returned.
- `ab:<share>`: a share of requests (0 < share < 1) is answered by the challenger (arm "challenger").
  A client that sends `X-Client-Key` always gets the same arm (a hash of task and key, the same in every
  worker, replica and restart); without one a seeded random draw per worker decides (`AB_SEED`).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass

MODES = ("off", "shadow", "ab")
CLIENT_KEY_HEADER = "x-client-key"
# A client key is hashed, never stored or used as a label; longer keys are cut (the header limit bounds them anyway).
MAX_CLIENT_KEY_CHARS = 256
_AB = re.compile(r"^ab:(0?\.\d+|[01](\.\d*)?)$")


@dataclass(frozen=True)
class Routing:
    """A task's challenger mode and, for A/B, the challenger's share of requests."""

    mode: str = "off"
    share: float = 0.0

    @classmethod
    def parse(cls, text: str, variable: str) -> Routing:
        """`off`, `shadow` or `ab:<share>`; anything else is a configuration error naming the variable."""
        value = text.strip().lower()
        if value in ("", "off"):
            return cls()
        if value == "shadow":
            return cls("shadow")
        match = _AB.match(value)
        if match is not None and 0.0 < float(value[3:]) < 1.0:
            return cls("ab", float(value[3:]))
        raise SystemExit(f"environment variable {variable} must be off, shadow or ab:<share> with 0 < share < 1 "
                         f"(e.g. ab:0.2), got {text!r}")

    def describe(self) -> dict[str, object]:
        return {"mode": self.mode, **({"challenger_share": self.share} if self.mode == "ab" else {})}


def routing_from_env(task: str) -> Routing:
    variable = f"{task.upper()}_CHALLENGER"
    return Routing.parse(os.environ.get(variable, ""), variable)


def key_fraction(task: str, client_key: str) -> float:
    """A client key's fixed place in [0, 1): the same for every worker and replica, uniform over keys."""
    digest = hashlib.blake2b(f"{task}\0{client_key[:MAX_CLIENT_KEY_CHARS]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class ArmChooser:
    """Draws the arm of each request of one task under its routing (see the module docstring)."""

    def __init__(self, task: str, routing: Routing, seed: int = 0) -> None:
        self.task = task
        self.routing = routing
        self._random = random.Random(f"{task}:{seed}")

    def arm(self, client_key: str | None) -> str:
        """"champion" or "challenger" for the model that answers."""
        if self.routing.mode != "ab":
            return "champion"
        place = key_fraction(self.task, client_key) if client_key else self._random.random()
        return "challenger" if place < self.routing.share else "champion"

    @property
    def shadows(self) -> bool:
        return self.routing.mode == "shadow"
