"""Moving hot rows to cold Avro files, exactly once.

Per (dataset, table), under a PostgreSQL advisory lock so two archivers never move the same
rows: stream the rows older than the cut-off from a cursor (one schema version per file,
ordered by time so blocks have tight time ranges), frame them into blocks from their stored
bytes, upload the file, then in one transaction register the file with its block index and
delete exactly the rows it holds. A crash before that commit leaves the rows in the buffer and
at most an unregistered object, which the orphan sweep (``fusou.storage.sweep``) deletes after
the grace period.

Failures stay with their table: a call covering several tables reports a table that failed
(status FAILED with the error) and goes on with the others, then sweeps; only a call naming one
table gets that table's error as its own. Rows no cold file can hold are set aside first
(``fusou.archive.quarantine``), so they fail their table's run once instead of every run.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import asyncpg
import numpy as np

from fusou.archive.blocks import build_blocks
from fusou.archive.quarantine import quarantine_message, quarantine_unplaceable
from fusou.catalog.files import BlockEntry, FileEntry, register_file
from fusou.catalog.runs import RunKind, RunTally
from fusou.cpu import run_cpu
from fusou.db.status import rows_affected
from fusou.errors import Aborted, InvalidArgument, NotFound
from fusou.formats.avro_container import SEQ_FIELD, cold_schema, container_header
from fusou.formats.file_metadata import FileDescription
from fusou.jobs import StorageJob, describe_failure
from fusou.lake.report import LakeReport
from fusou.lake.run import publish
from fusou.names import check_name
from fusou.schema.model import TableSchema
from fusou.schema.time_bounds import MAX_SPAN_S
from fusou.storage.keys import COLD, cold_key
from fusou.storage.locks import ARCHIVE_LOCK, try_pool_lock
from fusou.storage.partitions import DAY_MS, day_name, day_start
from fusou.storage.sweep import sweep_orphans

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveOptions:
    dataset_id: str = ""
    table: str = ""
    min_age_s: float | None = None
    max_rows_per_table: int = 0
    max_tables: int = 0


class TableStatus(Enum):
    ARCHIVED = "archived"
    NOTHING_TO_DO = "nothing_to_do"
    PARTIAL = "partial"
    SKIPPED_BUSY = "skipped_busy"
    FAILED = "failed"


@dataclass
class TableOutcome:
    dataset_id: str
    table: str
    rows: int = 0
    files: int = 0
    blocks: int = 0
    bytes: int = 0
    uncompressed_bytes: int = 0
    more_remaining: bool = False
    skipped_busy: bool = False
    rows_quarantined: int = 0
    # What went wrong, "; " between several things; empty when nothing did.
    error: str = ""

    @property
    def compression_ratio(self) -> float:
        return self.uncompressed_bytes / self.bytes if self.bytes else 0.0

    @property
    def status(self) -> TableStatus:
        # Quarantined rows count as a failure: someone has to look at them, once.
        if self.error:
            return TableStatus.FAILED
        if self.skipped_busy:
            return TableStatus.SKIPPED_BUSY
        if self.more_remaining:
            return TableStatus.PARTIAL
        if self.rows:
            return TableStatus.ARCHIVED
        return TableStatus.NOTHING_TO_DO

    def failed(self, problem: str) -> None:
        self.error = f"{self.error}; {problem}" if self.error else problem


@dataclass
class ArchiveReport:
    tables: list[TableOutcome] = field(default_factory=list)
    orphans_deleted: int = 0
    # Why the orphan sweep failed, when it did; the tables' results stand.
    sweep_error: str = ""
    # The Iceberg tables brought in step with what this call archived (and what earlier runs
    # left unpublished); a failure there leaves the archived rows archived.
    lake: LakeReport = field(default_factory=LakeReport)

    @property
    def failed_tables(self) -> int:
        return sum(1 for t in self.tables if t.status is TableStatus.FAILED)

    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined for t in self.tables)


@dataclass(frozen=True)
class _Table:
    table_id: int
    dataset_id: str
    name: str
    key_fields: tuple[str, ...]


@dataclass
class _FileResult:
    rows: int
    blocks: int
    bytes: int
    uncompressed_bytes: int


_ROWS_QUERY = (
    "SELECT seq, event_time, ingested_at, record FROM fusou_buffer "
    "WHERE table_id = $1 AND schema_version = $2 AND ingested_at < $3 "
    "ORDER BY event_time, seq"
)


def _event_time(row: Any) -> int:
    return int(row["event_time"])


async def _delete_rows(conn: asyncpg.Connection, table_id: int, seqs: np.ndarray) -> int:
    """Delete exactly these buffer rows; anything else means another writer moved them."""
    status = await conn.execute(
        "DELETE FROM fusou_buffer WHERE table_id = $1 AND seq = ANY($2::bigint[])",
        table_id,
        seqs.tolist(),
    )
    deleted = rows_affected(status)
    if deleted != len(seqs):
        raise Aborted(f"expected to retire {len(seqs)} buffer rows, found {deleted}; retry")
    return deleted


def _tally(report: ArchiveReport, tally: RunTally) -> None:
    tally.tables = sum(1 for t in report.tables if t.rows)
    tally.attempted_tables = len(report.tables)
    tally.failed_tables = report.failed_tables
    tally.rows = sum(t.rows for t in report.tables)
    tally.bytes = sum(t.bytes for t in report.tables)
    tally.error = next(
        (f"{t.dataset_id}/{t.table}: {t.error}" for t in report.tables if t.error), ""
    )


class Archiver(StorageJob):
    async def archive(self, options: ArchiveOptions) -> ArchiveReport:
        if options.dataset_id:
            check_name("dataset_id", options.dataset_id)
        if options.table:
            if not options.dataset_id:
                raise InvalidArgument("table", "a table filter needs dataset_id")
            check_name("table", options.table)
        if options.min_age_s is not None and options.min_age_s < 0:
            raise InvalidArgument("min_age_seconds", "must not be negative")
        if options.min_age_s is not None and options.min_age_s > MAX_SPAN_S:
            # Older than anything FUSOU stores, and the cut-off would overflow 64 bits.
            raise InvalidArgument(
                "min_age_seconds", f"must be at most {MAX_SPAN_S} (the span of years 1 to 9999)"
            )
        if options.max_rows_per_table < 0:
            raise InvalidArgument("max_rows_per_table", "must not be negative")
        if options.max_tables < 0:
            raise InvalidArgument("max_tables", "must not be negative")
        await self._check_named_exist(options)
        async with self.recorded_run(RunKind.ARCHIVE) as tally:
            if options.dataset_id:
                tally.datasets.add(options.dataset_id)
            min_age = (
                self._settings.archive.min_age_s if options.min_age_s is None else options.min_age_s
            )
            cutoff = self._clock.now_ms() - int(min_age * 1000)
            tables = await self._candidates(options, cutoff)
            if options.max_tables:
                tables = tables[: options.max_tables]
            report = ArchiveReport()
            for table in tables:
                tally.datasets.add(table.dataset_id)
                outcome = TableOutcome(table.dataset_id, table.name)
                try:
                    await self._archive_table(
                        table,
                        cutoff,
                        options.max_rows_per_table,
                        outcome,
                        single=bool(options.table),
                    )
                except Exception as exc:
                    # One table's failure is its own (cancellation is not caught). A call naming
                    # the table gets the error itself, with its status code (UNAVAILABLE, ABORTED:
                    # worth a retry); a call covering several tables reports it and goes on.
                    if options.table:
                        raise
                    log.exception("archiving %s/%s failed", table.dataset_id, table.name)
                    outcome.failed(describe_failure(exc))
                report.tables.append(outcome)
            _tally(report, tally)
            report.lake = await publish(self, options.dataset_id, options.table)
            try:
                report.orphans_deleted = await self.sweep_orphans(options.dataset_id or None)
            except Exception as exc:
                # The tables' work is committed; their results are worth more than this error.
                log.exception("the orphan sweep after archiving failed")
                report.sweep_error = describe_failure(exc)
            await self.sweep_incomplete_writes(options.dataset_id or None)
        return report

    async def _check_named_exist(self, options: ArchiveOptions) -> None:
        """A dataset or table named in the request that does not exist is a mistake to report
        (a misspelt CronJob argument would otherwise archive nothing, successfully, forever)."""
        if not options.dataset_id:
            return
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT EXISTS (SELECT 1 FROM fusou_datasets WHERE dataset_id = $1) "
                "  AS has_dataset, "
                "EXISTS (SELECT 1 FROM fusou_tables WHERE dataset_id = $1 AND table_name = $2) "
                "  AS has_table",
                options.dataset_id,
                options.table,
            )
        if not row["has_dataset"]:
            raise NotFound(f"no dataset {options.dataset_id!r}")
        if options.table and not row["has_table"]:
            raise NotFound(f"no table {options.table!r} in dataset {options.dataset_id!r}")

    async def _candidates(self, options: ArchiveOptions, cutoff: int) -> list[_Table]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT t.table_id, t.dataset_id, t.table_name, t.key_fields FROM fusou_tables t "
                "WHERE ($1 = '' OR t.dataset_id = $1) AND ($2 = '' OR t.table_name = $2) "
                "AND EXISTS (SELECT 1 FROM fusou_buffer b "
                "            WHERE b.table_id = t.table_id AND b.ingested_at < $3) "
                "ORDER BY t.dataset_id, t.table_name",
                options.dataset_id,
                options.table,
                cutoff,
            )
        return [
            _Table(r["table_id"], r["dataset_id"], r["table_name"], tuple(r["key_fields"]))
            for r in rows
        ]

    async def _archive_table(
        self, table: _Table, cutoff: int, max_rows: int, outcome: TableOutcome, *, single: bool
    ) -> None:
        # A session lock on its own connection: it outlives the per-file transactions, and a
        # crashed archiver's lock goes away with its connection.
        async with try_pool_lock(self._pool, ARCHIVE_LOCK, table.table_id) as locked:
            if not locked:
                if single:
                    raise Aborted(
                        f"{table.dataset_id}/{table.name} is being archived by another call"
                    )
                outcome.skipped_busy = True
                return
            await self._archive_locked(table, cutoff, max_rows, outcome)

    async def _archive_locked(
        self, table: _Table, cutoff: int, max_rows: int, outcome: TableOutcome
    ) -> None:
        """Set aside the rows no cold file can hold, then archive the rest."""
        async with self._pool.acquire() as conn:
            quarantined = await quarantine_unplaceable(conn, table.table_id, cutoff)
        if quarantined:
            outcome.rows_quarantined = quarantined
            outcome.failed(quarantine_message(quarantined))
            log.warning(
                "archiving %s/%s: %s",
                table.dataset_id,
                table.name,
                quarantine_message(quarantined),
            )
        await self._move_rows(table, cutoff, max_rows, outcome)

    async def _move_rows(
        self, table: _Table, cutoff: int, max_rows: int, outcome: TableOutcome
    ) -> None:
        async with self._pool.acquire() as conn:
            versions = [
                r["schema_version"]
                for r in await conn.fetch(
                    "SELECT DISTINCT schema_version FROM fusou_buffer "
                    "WHERE table_id = $1 AND ingested_at < $2 ORDER BY 1",
                    table.table_id,
                    cutoff,
                )
            ]
        budget = max_rows or None
        for version in versions:
            schema = await self._registry.version(table.table_id, version)
            async with self._pool.acquire() as read_conn, read_conn.transaction(readonly=True):
                cursor = await read_conn.cursor(_ROWS_QUERY, table.table_id, version, cutoff)
                carry: list[Any] = []
                while budget is None or budget > 0:
                    written, carry = await self._write_file(table, schema, cursor, budget, carry)
                    if written is None:
                        break
                    outcome.rows += written.rows
                    outcome.files += 1
                    outcome.blocks += written.blocks
                    outcome.bytes += written.bytes
                    outcome.uncompressed_bytes += written.uncompressed_bytes
                    if budget is not None:
                        budget -= written.rows
            if budget == 0:
                break
        if budget == 0:
            async with self._pool.acquire() as conn:
                outcome.more_remaining = bool(
                    await conn.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM fusou_buffer "
                        "WHERE table_id = $1 AND ingested_at < $2)",
                        table.table_id,
                        cutoff,
                    )
                )

    async def _write_file(
        self,
        table: _Table,
        schema: TableSchema,
        cursor: asyncpg.cursor.Cursor,
        budget: int | None,
        carry: list[Any],
    ) -> tuple[_FileResult | None, list[Any]]:
        """Write one file from ``carry`` (rows fetched but not yet written) and the cursor.

        The rows are deleted from the buffer batch by batch inside one transaction that stays
        open during the upload and commits together with the file's registration, so memory
        does not grow with the file and the deletes overlap with compression. Returns the file
        written (None when no rows were left) and the rows fetched beyond the file's size cap,
        which start the next file.
        """
        s = self._settings
        # Two blocks per fetch: build_blocks compresses them in parallel.
        fetch_rows = 2 * s.archive.block_rows

        def fetch_size(taken: int) -> int:
            return fetch_rows if budget is None else min(fetch_rows, budget - taken)

        first = carry or await cursor.fetch(fetch_size(0))
        if not first:
            return None, []
        codec = s.archive.codec
        sync = os.urandom(16)
        header = container_header(
            cold_schema(schema),
            codec,
            sync,
            FileDescription(
                dataset=table.dataset_id,
                table=table.name,
                schema_version=schema.version,
                key_fields=table.key_fields,
                time_field=schema.time_field,
                seq_field=SEQ_FIELD,
            ).key_value_metadata(),
        )
        index: list[BlockEntry] = []
        sizes = {"rows": 0, "uncompressed": 0, "bytes": len(header)}
        leftover: list[Any] = []
        # One file holds one UTC day (rows come in time order): its date= folder is the truth.
        day_end = day_start(first[0]["event_time"]) + DAY_MS
        key = cold_key(table.dataset_id, table.name, day_name(first[0]["event_time"]))

        async with self._pool.acquire() as write_conn, write_conn.transaction():
            inflight: dict[str, asyncio.Future[Any]] = {}

            async def body() -> AsyncGenerator[bytes, None]:
                nonlocal leftover
                try:
                    yield header
                    batch = first
                    taken = len(batch)
                    while batch:
                        cut = bisect.bisect_left(batch, day_end, key=_event_time)
                        beyond, batch = batch[cut:], batch[:cut]
                        if not batch:
                            leftover = beyond
                            break
                        # Rows of the next day end the file: nothing more to read ahead for it.
                        more = 0 if beyond else fetch_size(taken)
                        if more > 0:  # read ahead while this batch compresses
                            inflight["fetch"] = asyncio.ensure_future(cursor.fetch(more))
                        blocks = await run_cpu(
                            build_blocks,
                            batch,
                            codec=codec,
                            sync=sync,
                            max_block_bytes=s.archive.block_bytes,
                            max_block_rows=s.archive.block_rows,
                            schema=schema,
                        )
                        used = 0
                        done: list[np.ndarray] = []
                        for b in blocks:
                            if index and sizes["bytes"] >= s.archive.max_file_bytes:
                                break  # the file is full
                            index.append(
                                BlockEntry(
                                    sizes["bytes"],
                                    len(b.data),
                                    b.row_count,
                                    b.min_time,
                                    b.max_time,
                                    column_stats=b.column_stats,
                                )
                            )
                            sizes["bytes"] += len(b.data)
                            sizes["uncompressed"] += b.uncompressed_bytes
                            sizes["rows"] += b.row_count
                            used += b.row_count
                            done.append(b.seqs)
                            yield b.data
                        if "delete" in inflight:
                            await inflight.pop("delete")
                        if done:
                            inflight["delete"] = asyncio.ensure_future(
                                _delete_rows(write_conn, table.table_id, np.concatenate(done))
                            )
                        await self._checkpoint("upload")
                        fetched = await inflight.pop("fetch") if "fetch" in inflight else []
                        if (
                            beyond
                            or used < len(batch)
                            or sizes["bytes"] >= s.archive.max_file_bytes
                        ):
                            # The rest starts the next file.
                            leftover = [*batch[used:], *beyond, *fetched]
                            break
                        batch = fetched
                        taken += len(batch)
                    if "delete" in inflight:
                        await inflight.pop("delete")
                finally:
                    # On failure, settle what still runs on the connections before rollback.
                    for task in inflight.values():
                        task.cancel()
                    for task in inflight.values():
                        with contextlib.suppress(BaseException):
                            await task
                    inflight.clear()

            stream = body()
            try:
                info = await self._store.put(key, stream)
            finally:
                await stream.aclose()
            await self._checkpoint("uploaded")
            new_file = FileEntry(
                table_id=table.table_id,
                file_format="avro",
                byte_offset=0,
                byte_length=info.size,
                row_count=sizes["rows"],
                uncompressed_bytes=sizes["uncompressed"],
                min_time=min(b.min_time for b in index),
                max_time=max(b.max_time for b in index),
                schema_version=schema.version,
                codec=codec,
                header=header,
                blocks=index,
            )
            await register_file(write_conn, table.dataset_id, key, "cold", new_file)
            await write_conn.execute(
                "UPDATE fusou_datasets SET compaction_needed = true WHERE dataset_id = $1",
                table.dataset_id,
            )
            await self._checkpoint("commit")
        await self._checkpoint("committed")
        log.info(
            "archived %d rows of %s/%s to %s", sizes["rows"], table.dataset_id, table.name, key
        )
        result = _FileResult(sizes["rows"], len(index), info.size, sizes["uncompressed"])
        return result, leftover

    async def sweep_orphans(self, dataset_id: str | None = None) -> int:
        """Delete objects under cold/ that no catalog row names, once older than the grace,
        each table's judged under its archive lock (``fusou.storage.sweep``)."""
        return await sweep_orphans(
            self._pool,
            self._store,
            COLD,
            dataset_id,
            self._settings.store.delete_grace_s,
            ARCHIVE_LOCK,
            self._clock,
        )
