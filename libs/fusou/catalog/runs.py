"""The record of Archive and Compact runs: what each did and how it ended, newest kept
(``fusou.jobs.StorageJob.recorded_run`` writes them).

Recording is best effort: a run's result stands whether or not its record could be written
(the database may be what failed), so a failure to record is logged, never raised."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import asyncpg

from fusou.catalog.fence import enter_datasets

# The newest runs of each kind kept; older ones are deleted as new ones are recorded.
KEPT_PER_KIND = 500

log = logging.getLogger(__name__)


class RunKind(StrEnum):
    ARCHIVE = "archive"
    COMPACT = "compact"


class RunOutcome(StrEnum):
    OK = "ok"
    PARTIAL = "partial"  # some tables failed, others were done
    FAILED = "failed"  # the call raised, or every table it tried failed


@dataclass
class RunTally:
    """What a run did, filled in by the run as it goes."""

    tables: int = 0  # tables it moved rows of
    attempted_tables: int = 0  # tables it tried (done, with nothing to do, or failed)
    failed_tables: int = 0
    rows: int = 0
    bytes: int = 0
    error: str = ""
    # Every dataset it worked on, added as work on each starts (purges scrub by them).
    datasets: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class RunRecord:
    run_id: int
    kind: RunKind
    started_at: datetime
    finished_at: datetime
    outcome: RunOutcome
    tables: int
    failed_tables: int
    rows: int
    bytes: int
    error: str
    datasets: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


# A run's record waits at most this long for the database: the run's own result matters more.
RECORD_TIMEOUT_S = 5.0


# What replaces a run's error text when it may name a purged dataset.
SCRUBBED_ERROR = "(removed: it may name a purged dataset)"


def outcome_of(tally: RunTally) -> RunOutcome:
    if not tally.failed_tables:
        return RunOutcome.OK
    if tally.failed_tables >= tally.attempted_tables:
        return RunOutcome.FAILED
    return RunOutcome.PARTIAL


async def record_run(
    pool: asyncpg.Pool,
    kind: RunKind,
    started: datetime,
    finished: datetime,
    outcome: RunOutcome,
    tally: RunTally,
) -> None:
    async def insert() -> None:
        async with pool.acquire() as conn, conn.transaction():
            # Behind the fence of its datasets: a purge that marked one (or finished) before
            # is not named here, and one marking it later waits for this row, then scrubs it.
            await enter_datasets(conn, sorted(tally.datasets))
            kept: list[str] = await conn.fetchval(
                "SELECT coalesce(array_agg(dataset_id ORDER BY dataset_id), '{}') "
                "FROM fusou_datasets WHERE dataset_id = ANY($1::text[]) AND NOT purging",
                sorted(tally.datasets),
            )
            error = tally.error
            if error and len(kept) < len(tally.datasets):
                error = SCRUBBED_ERROR
            await conn.execute(
                "INSERT INTO fusou_runs (kind, started_at, finished_at, outcome, tables, "
                "failed_tables, rows, bytes, error, datasets) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                kind.value,
                started,
                finished,
                outcome.value,
                tally.tables,
                tally.failed_tables,
                tally.rows,
                tally.bytes,
                error,
                kept,
            )
            await conn.execute(
                "DELETE FROM fusou_runs WHERE kind = $1 AND run_id < ("
                "  SELECT run_id FROM fusou_runs WHERE kind = $1"
                "  ORDER BY run_id DESC OFFSET $2 LIMIT 1)",
                kind.value,
                KEPT_PER_KIND - 1,
            )

    try:
        await asyncio.wait_for(insert(), RECORD_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - whatever fails here, the run's result stands
        log.warning("the %s run was not recorded: %s", kind.value, exc)


async def recent_runs(pool: asyncpg.Pool, kind: RunKind, limit: int) -> list[RunRecord]:
    rows = await pool.fetch(
        "SELECT * FROM fusou_runs WHERE kind = $1 ORDER BY run_id DESC LIMIT $2",
        kind.value,
        limit,
    )
    return [
        RunRecord(
            run_id=r["run_id"],
            kind=RunKind(r["kind"]),
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            outcome=RunOutcome(r["outcome"]),
            tables=r["tables"],
            failed_tables=r["failed_tables"],
            rows=r["rows"],
            bytes=r["bytes"],
            error=r["error"],
            datasets=tuple(r["datasets"]),
        )
        for r in rows
    ]


async def last_successful(pool: asyncpg.Pool) -> dict[RunKind, datetime]:
    """When each kind last finished without failing (ok or partial), for the metrics."""
    rows = await pool.fetch(
        "SELECT kind, max(finished_at) AS at FROM fusou_runs WHERE outcome <> 'failed' "
        "GROUP BY kind"
    )
    return {RunKind(r["kind"]): r["at"] for r in rows}
