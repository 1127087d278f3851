"""What the runs that move data between the catalog and the object store share: archive,
upload and compaction each hold the settings, the connection pool, the store and the table
registry, and report their steps to a checkpoint (a no-op, except in the crash-safety tests,
which fail or hold a run at a named step)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from fusou.catalog.runs import RunKind, RunOutcome, RunTally, outcome_of, record_run
from fusou.catalog.tables import TableRegistry
from fusou.clock import SYSTEM_CLOCK, Clock
from fusou.config import Settings
from fusou.objectstore.base import ObjectStore
from fusou.storage.sweep import sweep_incomplete_writes

Checkpoint = Callable[[str], Awaitable[None]]


async def no_checkpoint(_: str) -> None:
    return None


J = TypeVar("J", bound="StorageJob")


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

    @property
    def settings(self) -> Settings:
        return self._settings

    def sibling(self, kind: type[J]) -> J:
        """Another kind of job on the same settings, pool, store, registry, checkpoint and
        clock (a run that publishes what it moved, say)."""
        return kind(
            self._settings, self._pool, self._store, self._registry, self._checkpoint, self._clock
        )

    @contextlib.asynccontextmanager
    async def recorded_run(self, kind: RunKind) -> AsyncIterator[RunTally]:
        """Record the run of the body (``fusou.catalog.runs``): its tally when it returns,
        ``failed`` with the error when it raises (raised on; cancellation is not recorded)."""
        started = self._clock.now()
        tally = RunTally()
        try:
            yield tally
        except Exception as exc:
            tally.error = describe_failure(exc)
            await record_run(self._pool, kind, started, self._clock.now(), RunOutcome.FAILED, tally)
            raise
        await record_run(self._pool, kind, started, self._clock.now(), outcome_of(tally), tally)

    async def sweep_incomplete_writes(self, dataset_id: str | None) -> int:
        """Delete what killed writes left in the store once older than the grace period
        (``fusou.storage.sweep``); logs rather than raises a store error."""
        return await sweep_incomplete_writes(
            self._store, dataset_id, self._settings.store.delete_grace_s, self._clock
        )


# Longest error text a run reports for one table (a result is not a log).
MAX_ERROR_CHARS = 1000


def describe_failure(exc: BaseException) -> str:
    """One line about a failure for a run's result: its kind and message, shortened."""
    text = str(exc)
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    line = " ".join(line.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"
