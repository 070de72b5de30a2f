"""Work that runs beside the server for as long as a context is open: the scaffold of every
periodic loop of ``mobility serve`` and ``mobility scheduler`` (booking upkeep, webhook rounds,
their kicker), written once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

__all__ = ["in_background"]


@contextlib.asynccontextmanager
async def in_background(
    work: Coroutine[Any, Any, None], *, name: str
) -> AsyncIterator[asyncio.Task[None]]:
    """``work`` as a task named ``name`` while the context is open; cancelled and awaited on
    exit (a caller that wants the work to wind down first does so before leaving)."""
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
