"""The per-row sample key: what lets a store draw the same uniform sample of a window, fast, on SQLite and PostgreSQL.

Each prediction row is stored with `sample_key`, a 62-bit hash of what identifies the row (task, request id,
position, arm, time), computed once by the writer. A sample of k rows for a seed is the k rows of the window
whose key comes first after the seed's offset on the key circle: ORDER BY (key + shift) % KEY_SPACE LIMIT k,
which both stores evaluate with integer arithmetic and a bounded top-k sort. The keys behave as independent
uniform draws, so those k rows are a uniform sample of the window, and the same rows in either store (the key
comes from the row's content, not from the store's ids). Rows logged before the column existed (NULL) get
`fallback_key`, a multiplicative hash of their id: still spread over the key space, but tied to the store's ids.
"""

from __future__ import annotations

import hashlib

KEY_BITS = 62
KEY_SPACE = 1 << KEY_BITS  # keys are in [0, KEY_SPACE): (key + shift) stays below 2**63, a signed 64-bit integer


def _hash62(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> (64 - KEY_BITS)


def sample_key(task: str, request_id: str, position: int, arm: str, ts: str) -> int:
    """The row's key: the same row logged to any store gets the same one."""
    return _hash62(f"{task}\x1f{request_id}\x1f{position}\x1f{arm}\x1f{ts}")


def shift(seed: int) -> int:
    """What a seed adds to every key (mod KEY_SPACE) before the smallest are taken; in [1, KEY_SPACE]."""
    return KEY_SPACE - _hash62(f"sample seed {seed}")


def fallback_key(modulo: str = "%") -> str:
    """SQL for the key of a row logged before `sample_key` existed: a multiplicative hash of its id mod 2**32 (an odd
    factor: a permutation of it), scaled to the key space; every product stays below 2**63, so neither store
    overflows a 64-bit integer. `modulo` is the driver's spelling of the operator (psycopg: %%)."""
    return f"(((id {modulo} 4294967296) * 1640531527) {modulo} 4294967296) * 1073741824"
