"""What the dashboard shows, read at once: GetStats's per-table figures, the datasets'
compaction flags and backlog, the recent runs and the rates, for the datasets a viewer may see."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from fusou.catalog.runs import RunKind, RunRecord, recent_runs
from fusou.catalog.stats import DatasetFlags, TableStats, dataset_flags, table_stats
from fusou.dashboard.rates import RatePoint, RateSampler

RECENT_RUNS = 20


@dataclass(frozen=True)
class DatasetState:
    flags: DatasetFlags
    tables: int
    # Cold files and raw fragments: what the next compactions read.
    backlog_files: int
    backlog_bytes: int


@dataclass(frozen=True)
class Snapshot:
    taken_at: datetime
    tables: list[TableStats]
    datasets: list[DatasetState]
    # Runs and rates mix every dataset: None for a viewer who may not see them all.
    archive_runs: list[RunRecord] | None
    compact_runs: list[RunRecord] | None
    rates: list[RatePoint] | None


async def take_snapshot(
    pool: asyncpg.Pool, may_see: Callable[[str], bool], sees_all: bool, sampler: RateSampler
) -> Snapshot:
    taken_at = datetime.now(UTC)
    tables = [t for t in await table_stats(pool) if may_see(t.dataset_id)]
    datasets = []
    for flags in await dataset_flags(pool):
        if not may_see(flags.dataset_id):
            continue
        own = [t for t in tables if t.dataset_id == flags.dataset_id]
        datasets.append(
            DatasetState(
                flags,
                len(own),
                sum(t.backlog_files for t in own),
                sum(t.backlog_bytes for t in own),
            )
        )
    if not sees_all:
        return Snapshot(taken_at, tables, datasets, None, None, None)
    return Snapshot(
        taken_at,
        tables,
        datasets,
        await recent_runs(pool, RunKind.ARCHIVE, RECENT_RUNS),
        await recent_runs(pool, RunKind.COMPACT, RECENT_RUNS),
        sampler.points(),
    )
