"""Admission of work that must not run without bound at once in one process: a semaphore per
kind of work, shared by every request of the process.

A caller waits for its turn *before* it takes a database connection or memory, so a burst of
expensive requests queues cheaply instead of exhausting the pool (and starving the cheap
requests behind it) or the process's memory.
"""

from __future__ import annotations

import asyncio

__all__ = ["COSTLY", "PASSWORD_HASHING", "slots"]

COSTLY = "costly-operations"  # tripOptions (app/platform/settings/graphql.py says how many)
PASSWORD_HASHING = "password-hashing"

_slots: dict[tuple[int, str, int], asyncio.Semaphore] = {}


def slots(kind: str, size: int) -> asyncio.Semaphore:
    """The process's semaphore for ``kind`` (one per event loop: a semaphore belongs to the
    loop it first waits on)."""
    key = (id(asyncio.get_running_loop()), kind, size)
    semaphore = _slots.get(key)
    if semaphore is None:
        semaphore = _slots[key] = asyncio.Semaphore(size)
    return semaphore
