"""Compact: a dataset's raw fragments, cold Avro files and small Parquet files become optimized
Parquet files, table by table, exactly once.

The seed's flags, made safe for several runners:

- a run *claims* a dataset (``compaction_in_progress`` with an expiry, ``compaction_needed``
  cleared) in one conditional UPDATE, so two runs never work on one dataset, and renews the
  claim while it runs (``fusou.compact.claim``), so a dead runner's claim lapses within
  FUSOU_COMPACT_CLAIM_TTL_S instead of blocking the dataset;
- new data arriving meanwhile sets ``compaction_needed`` again, so it is not lost;
- success sets ``last_compacted_at`` and keeps the dataset flagged when work is left over;
  failure releases the claim and flags the dataset for the next run;
- every release sets ``last_compaction_attempt_at``, the scheduled order, so a dataset that
  fails every run takes its turn behind the others instead of starving them.

Failures stay with their table: a table that fails is reported FAILED with its error, its
inputs untouched, and the dataset's other tables and the sweep still run; the dataset is then
FAILED (naming the tables) and stays flagged. Only a call naming one table gets that table's
error as its own.

The algorithm, one module per step:

- lease (``fusou.compact.claim``): claim the dataset, renew the claim, release it;
- plan (``fusou.compact.inputs``): per table, under its advisory lock (which also shields its
  new objects from the orphan sweep), choose the inputs within the guardrails;
- rewrite (``fusou.compact.rewrite``, on threads of its own): read the inputs through the
  reader's own decoding, reconcile them into the latest schema, drop the rows the dedup rule
  can never return, sort by (time, seq), write Parquet;
- commit (``fusou.compact.commit``): upload, then in one transaction register the outputs and
  retire the inputs, checking that every input is still active;
- cleanup (``fusou.compact.cleanup``): delete the objects retired longer than the grace period
  ago (before the tables' work) and sweep the orphans (after it).

A crash anywhere leaves the old state or the new one; replaced objects are deleted after the
grace period, unregistered ones by the sweep.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from fusou.catalog.runs import RunKind, RunTally
from fusou.catalog.tables import TableInfo
from fusou.compact.claim import DatasetLease
from fusou.compact.cleanup import delete_retired, sweep_dataset_orphans
from fusou.compact.commit import commit, upload_outputs
from fusou.compact.inputs import (
    InputFile,
    candidates,
    retire_applied_deletions,
    select,
    table_deletions,
)
from fusou.compact.rewrite import RewriteThreads
from fusou.errors import Aborted, InvalidArgument, NotFound
from fusou.jobs import StorageJob, describe_failure
from fusou.lake.report import LakeUnpublished
from fusou.lake.run import publish
from fusou.names import check_name
from fusou.objectstore.retry import with_retries
from fusou.read.deletions import Deletion
from fusou.read.fetch import FetchStats, Span, fetch_spans
from fusou.read.files import whole_file_span
from fusou.storage.locks import COMPACT_LOCK, try_pool_lock

log = logging.getLogger(__name__)


class Status(Enum):
    COMPACTED = "compacted"
    NOTHING_TO_DO = "nothing_to_do"
    PARTIAL = "partial"
    SKIPPED_BUSY = "skipped_busy"
    FAILED = "failed"


@dataclass
class TableOutcome:
    table: str
    input_files: int = 0
    input_rows: int = 0
    input_bytes: int = 0
    output_files: int = 0
    output_rows: int = 0
    output_bytes: int = 0
    duplicates_removed: int = 0
    more_remaining: bool = False
    skipped_busy: bool = False
    error: str = ""

    @property
    def status(self) -> Status:
        if self.error:
            return Status.FAILED
        if self.skipped_busy:
            return Status.SKIPPED_BUSY
        if self.more_remaining:
            return Status.PARTIAL
        if self.input_files:
            return Status.COMPACTED
        return Status.NOTHING_TO_DO


@dataclass
class DatasetOutcome:
    dataset_id: str
    status: Status
    tables: list[TableOutcome] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class CompactOptions:
    dataset_id: str = ""
    table: str = ""


def _tally(outcomes: list[DatasetOutcome], tally: RunTally) -> None:
    tables = [t for d in outcomes for t in d.tables]
    tally.tables = sum(1 for t in tables if t.output_files)
    tally.attempted_tables = len(tables) + sum(1 for d in outcomes if d.error and not d.tables)
    # A dataset that failed before its tables (its claim, say) counts as one failed table.
    tally.failed_tables = sum(1 for t in tables if t.error) + sum(
        1 for d in outcomes if d.error and not any(t.error for t in d.tables)
    )
    tally.rows = sum(t.output_rows for t in tables)
    tally.bytes = sum(t.output_bytes for t in tables)
    # A dataset's error names its failed tables.
    tally.error = next((f"{d.dataset_id}: {d.error}" for d in outcomes if d.error), "")


class Compactor(StorageJob):
    @functools.cached_property
    def runner_id(self) -> str:
        """Who holds a claim, for people reading the datasets table."""
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def compact(self, options: CompactOptions) -> list[DatasetOutcome]:
        deadline = asyncio.get_running_loop().time() + self._settings.compact.timeout_ms / 1000
        if options.table and not options.dataset_id:
            raise InvalidArgument("table", "a table filter needs dataset_id")
        if options.dataset_id:
            check_name("dataset_id", options.dataset_id)
            if options.table:
                check_name("table", options.table)
        async with self.recorded_run(RunKind.COMPACT) as tally:
            if options.dataset_id:
                tally.datasets.add(options.dataset_id)
                outcomes = [await self._dataset(options.dataset_id, options.table, deadline, True)]
            else:
                chosen = await self._scheduled()
                limit = asyncio.Semaphore(self._settings.compact.concurrency)

                async def one(dataset_id: str) -> DatasetOutcome:
                    tally.datasets.add(dataset_id)
                    async with limit:
                        return await self._dataset(dataset_id, "", deadline, False)

                outcomes = list(await asyncio.gather(*(one(d) for d in chosen)))
            _tally(outcomes, tally)
            await self.sweep_incomplete_writes(options.dataset_id or None)
        return outcomes

    async def _scheduled(self) -> list[str]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT dataset_id FROM fusou_datasets "
                "WHERE compaction_needed "
                "   OR (compaction_in_progress AND compaction_claim_expires_at < now()) "
                "ORDER BY last_compaction_attempt_at NULLS FIRST, dataset_id LIMIT $1",
                self._settings.compact.max_datasets_per_run,
            )
        return [r["dataset_id"] for r in rows]

    # -- one dataset ----------------------------------------------------------------------------

    async def _dataset(
        self, dataset_id: str, only_table: str, deadline: float, explicit: bool
    ) -> DatasetOutcome:
        claimed = await self._lease.claim(dataset_id, deadline)
        if claimed is None:
            if explicit:
                raise NotFound(f"no dataset {dataset_id!r}")
            return DatasetOutcome(dataset_id, Status.NOTHING_TO_DO)
        if not claimed:
            if explicit:
                raise Aborted(f"dataset {dataset_id} is being compacted by another run; retry")
            return DatasetOutcome(dataset_id, Status.SKIPPED_BUSY)
        outcome = DatasetOutcome(dataset_id, Status.NOTHING_TO_DO)
        # Failures of the dataset's housekeeping (deleting retired objects, the sweep): they
        # fail the dataset's result, not its tables' work.
        chores: list[str] = []
        try:
            await self._chore("deleting retired objects", self._delete_retired, dataset_id, chores)
            names = await self._table_names(dataset_id, only_table)
            cut_short = False
            for name in names:
                result = TableOutcome(name)
                bound = asyncio.timeout_at(deadline)
                try:
                    async with bound:
                        info = await self._registry.get(dataset_id, name, refresh=True)
                        if info is None or info.latest.version == 0:
                            continue  # declared, nothing stored yet
                        await self._table(info, result)
                except TimeoutError as exc:
                    if bound.expired():
                        # Cut short: this table's work was either committed whole or not at
                        # all.
                        log.warning("compaction of %s/%s ran out of time", dataset_id, name)
                        result.more_remaining = cut_short = True
                        outcome.tables.append(result)
                        break
                    # A timeout of its own (a connection, say): a failure of this table.
                    if only_table:
                        raise
                    self._table_failed(dataset_id, result, exc)
                except Exception as exc:
                    # A call naming the table gets its error, with its status code; a call
                    # covering several reports it and goes on.
                    if only_table:
                        raise
                    self._table_failed(dataset_id, result, exc)
                outcome.tables.append(result)
            await self._chore(
                "publishing to the lake",
                functools.partial(self._publish_lake, only_table=only_table),
                dataset_id,
                chores,
            )
            await self._chore("sweeping orphans", self._sweep_orphans, dataset_id, chores)
        except BaseException as exc:
            await self._lease.release(dataset_id, succeeded=False, more=True)
            if explicit or not isinstance(exc, Exception):
                raise
            log.exception("compaction of %s failed", dataset_id)
            outcome.status = Status.FAILED
            outcome.error = describe_failure(exc)
            return outcome
        failed = [t for t in outcome.tables if t.status is Status.FAILED]
        if failed or chores:
            # Whatever the other tables did is committed; the dataset stays flagged, and
            # last_compacted_at keeps saying when it last compacted cleanly.
            await self._lease.release(dataset_id, succeeded=False, more=True)
            outcome.status = Status.FAILED
            outcome.error = "; ".join([f"table {t.table}: {t.error}" for t in failed] + chores)
            return outcome
        more = cut_short or any(t.more_remaining for t in outcome.tables)
        await self._lease.release(dataset_id, succeeded=True, more=more)
        if more:
            outcome.status = Status.PARTIAL
        elif any(t.input_files for t in outcome.tables):
            outcome.status = Status.COMPACTED
        return outcome

    @staticmethod
    def _table_failed(dataset_id: str, result: TableOutcome, exc: Exception) -> None:
        log.error("compaction of %s/%s failed", dataset_id, result.table, exc_info=exc)
        result.error = describe_failure(exc)

    @staticmethod
    async def _chore(
        what: str, run: Callable[[str], Awaitable[int]], dataset_id: str, failures: list[str]
    ) -> None:
        try:
            await run(dataset_id)
        except Exception as exc:
            log.exception("%s of %s failed", what, dataset_id)
            failures.append(f"{what}: {describe_failure(exc)}")

    @functools.cached_property
    def _lease(self) -> DatasetLease:
        return DatasetLease(self._pool, self.runner_id, self._settings.compact.claim_ttl_s)

    @functools.cached_property
    def _threads(self) -> RewriteThreads:
        return RewriteThreads()

    async def close(self) -> None:
        """Shut down the threads the rewrites ran on (a later run starts them again)."""
        self._threads.close()

    async def _table_names(self, dataset_id: str, only_table: str) -> list[str]:
        """The dataset's tables (their schemas load one by one: one that fails to load is
        that table's failure)."""
        async with self._pool.acquire() as conn:
            names = [
                r["table_name"]
                for r in await conn.fetch(
                    "SELECT table_name FROM fusou_tables WHERE dataset_id = $1 "
                    "AND ($2 = '' OR table_name = $2) ORDER BY table_name",
                    dataset_id,
                    only_table,
                )
            ]
        if only_table and not names:
            raise NotFound(f"no table {only_table!r} in dataset {dataset_id!r}")
        return names

    # -- one table ------------------------------------------------------------------------------

    async def _table(self, info: TableInfo, result: TableOutcome) -> None:
        async with try_pool_lock(self._pool, COMPACT_LOCK, info.table_id) as locked:
            if not locked:
                # A runner whose claim lapsed is still at work on it.
                result.more_remaining = result.skipped_busy = True
                return
            info, inputs, deletions = await self._plan(info, result)
            if inputs:
                await self._compact_inputs(info, inputs, deletions, result)
            async with self._pool.acquire() as conn:
                retired = await retire_applied_deletions(conn, info.table_id)
            if retired:
                log.info("%s/%s: %d deletions made physical", info.dataset_id, info.name, retired)

    async def _plan(
        self, info: TableInfo, result: TableOutcome
    ) -> tuple[TableInfo, list[InputFile], list[Deletion]]:
        """The table's inputs for this run, within the guardrails, the schema to read them
        into, and the deletions to apply."""
        s = self._settings
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            # One snapshot: a file written under a deletion is never chosen without it.
            deletions = await table_deletions(conn, info.table_id)
            found = await candidates(conn, info.table_id, s.compact.target_file_bytes)
        # A file registered after the run loaded the schema may be of a newer version;
        # versions commit before their files, so a reload now covers every input (an older
        # schema would drop the newer fields' values for good).
        if any(f.ref.version > info.latest.version for f in found):
            info = await self._registry.get(info.dataset_id, info.name, refresh=True) or info
        chosen = select(found, s.compact.max_fragments, s.compact.max_bytes)
        result.more_remaining = chosen.more_remaining
        return info, chosen.inputs, deletions

    async def _compact_inputs(
        self,
        info: TableInfo,
        inputs: list[InputFile],
        deletions: list[Deletion],
        result: TableOutcome,
    ) -> None:
        s = self._settings
        started = time.monotonic()
        fetched = await self._fetch(info, inputs)
        await self._checkpoint("read")
        outputs, rows, duplicates = await self._threads.rewrite(
            inputs,
            fetched,
            info,
            s.compact.target_file_bytes,
            s.compact.row_group_rows,
            deletions,
        )
        del fetched
        keys = await upload_outputs(self._store, info, outputs, self._checkpoint)
        await self._checkpoint("uploaded")
        applied = max((d.deletion_id for d in deletions), default=0)
        await commit(self._pool, info, inputs, outputs, keys, self._checkpoint, applied)
        await self._checkpoint("committed")
        result.input_files = len(inputs)
        result.input_rows = sum(f.rows for f in inputs)
        result.input_bytes = sum(f.ref.length for f in inputs)
        result.output_files = len(outputs)
        result.output_rows = rows
        result.output_bytes = sum(len(o.data) for o in outputs)
        result.duplicates_removed = duplicates
        log.info(
            "compacted %s/%s: %d files (%d rows) into %d files (%d rows) in %.2fs",
            info.dataset_id,
            info.name,
            len(inputs),
            result.input_rows,
            len(outputs),
            rows,
            time.monotonic() - started,
        )

    async def _fetch(self, info: TableInfo, inputs: list[InputFile]) -> dict[Span, bytes]:
        """The inputs' stored, compressed bytes (within the guardrail)."""
        s = self._settings
        # Parquet files whole, footer included (read in one go); Avro files block by block.
        spans = [
            span
            for f in inputs
            for span in ([whole_file_span(f.ref)] if f.ref.parquet else [b.span for b in f.blocks])
        ]
        return await with_retries(
            lambda: fetch_spans(
                self._store,
                spans,
                max_gap=s.reader.coalesce_gap_bytes,
                max_request=s.reader.max_request_bytes,
                concurrency=s.reader.max_concurrent_gets,
                stats=FetchStats(),
            ),
            f"read inputs of {info.dataset_id}/{info.name}",
        )

    # -- cleanup -------------------------------------------------------------------------------

    async def _delete_retired(self, dataset_id: str) -> int:
        return await delete_retired(
            self._pool, self._store, dataset_id, self._settings.store.delete_grace_s
        )

    async def _publish_lake(self, dataset_id: str, *, only_table: str) -> int:
        """Bring the dataset's Iceberg tables in step with what compaction committed (and
        delete the lake files replaced longer than the grace period ago)."""
        report = await publish(self, dataset_id, only_table)
        if report.error:
            raise LakeUnpublished(report.error)
        return report.published

    async def _sweep_orphans(self, dataset_id: str) -> int:
        return await sweep_dataset_orphans(
            self._pool, self._store, dataset_id, self._settings.store.delete_grace_s, self._clock
        )
