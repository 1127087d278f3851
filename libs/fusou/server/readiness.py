"""Readiness: whether a service process can do its work, as a health status of its own.

The overall health status (service name "") says the process is alive; a liveness probe reads
it, and restarting a process whose database is down would not help. The ``readiness`` status,
and with it each hosted service's status, follows what the process depends on: PostgreSQL
answering a query and the object store answering a request, checked every
FUSOU_READINESS_INTERVAL_S. A readiness probe reads it, so that a Service sends no calls to a
process that would fail them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from fusou.objectstore.base import ObjectStore

log = logging.getLogger(__name__)

READINESS = "readiness"

# Returns what is wrong (an empty list when ready).
Check = Callable[[], Awaitable[list[str]]]


def dependency_check(pool: asyncpg.Pool, object_store: ObjectStore, timeout: float) -> Check:
    """PostgreSQL answers ``SELECT 1`` and the object store its ``check`` (the bucket or root
    directory exists and answers), each within ``timeout`` seconds."""

    async def database() -> str | None:
        try:
            async with asyncio.timeout(timeout):
                await pool.fetchval("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
            return f"PostgreSQL: {_describe(exc)}"
        return None

    async def store() -> str | None:
        try:
            async with asyncio.timeout(timeout):
                await object_store.check()
        except Exception as exc:  # noqa: BLE001 - as above
            return f"object store: {_describe(exc)}"
        return None

    async def check() -> list[str]:
        results = await asyncio.gather(database(), store())
        return [r for r in results if r is not None]

    return check


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}".strip()


async def watch(
    check: Check,
    set_ready: Callable[[bool], Awaitable[None]],
    interval: float,
    names: Sequence[str] = (),
) -> None:
    """Check now and every ``interval`` seconds, reporting each change (until cancelled)."""
    ready: bool | None = None
    while True:
        problems = await check()
        now = not problems
        if now != ready:
            await set_ready(now)
            if now:
                log.info("ready: %s", ", ".join(names) or "dependencies reachable")
            else:
                log.warning("not ready: %s", "; ".join(problems))
            ready = now
        await asyncio.sleep(interval)
