"""What the runs that move data between the catalog and the object store share: archive,
upload and compaction each hold the settings, the connection pool, the store and the table
registry, and report their steps to a checkpoint (a no-op, except in the crash-safety tests,
which fail or hold a run at a named step)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from fusou.catalog.tables import TableRegistry
from fusou.clock import SYSTEM_CLOCK, Clock
from fusou.config import Settings
from fusou.objectstore.base import ObjectStore, ObjectStoreError
from fusou.objectstore.retry import with_retries

log = logging.getLogger(__name__)

# Where a dataset's objects live (see the storage model): what a run for one dataset sweeps.
DATASET_PREFIXES = ("raw", "cold", "optimized")

Checkpoint = Callable[[str], Awaitable[None]]


async def no_checkpoint(_: str) -> None:
    return None


class StorageJob:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        store: ObjectStore,
        registry: TableRegistry,
        checkpoint: Checkpoint | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._store = store
        self._registry = registry
        self._checkpoint = checkpoint or no_checkpoint
        self._clock = clock

    async def sweep_incomplete_writes(self, dataset_id: str | None) -> int:
        """Delete what killed writes left in the store (temp files, S3 multipart uploads) once
        older than the grace period: one dataset's, or the whole store's for ``None``.

        Housekeeping, so a store error is logged rather than raised: it must not fail the run
        whose real work is done; the next run sweeps again.
        """
        horizon = self._clock.now() - dt.timedelta(seconds=self._settings.delete_grace_s)
        prefixes = [""] if dataset_id is None else [f"{p}/{dataset_id}/" for p in DATASET_PREFIXES]
        swept = 0
        try:
            for prefix in prefixes:
                swept += await with_retries(
                    functools.partial(self._store.sweep_incomplete, horizon, prefix),
                    f"sweep incomplete writes under {prefix!r}",
                )
        except ObjectStoreError:
            log.warning("could not sweep the leftovers of incomplete writes", exc_info=True)
        if swept:
            log.info("deleted %d leftovers of incomplete writes", swept)
        return swept

# Longest error text a run reports for one table (a result is not a log).
MAX_ERROR_CHARS = 1000


def describe_failure(exc: BaseException) -> str:
    """One line about a failure for a run's result: its kind and message, shortened."""
    text = str(exc)
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    line = " ".join(line.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"
