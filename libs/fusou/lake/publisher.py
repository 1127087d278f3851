"""Keeping each table's Iceberg table in step with the catalog.

The Iceberg table holds one Parquet file per UTC day of the table's archived rows: what
ReadRange answers for them, deduplicated (the dedup rule holds for Iceberg readers by
copy-on-write: a day whose rows change is rewritten whole, so a superseded version is never in
a published file, and no engine needs delete files). A run, per table, under the table's lake
lock:

1. compare the days each live catalog file spans with the sources each published day was built
   from (PostgreSQL only: a table with nothing new costs three small queries);
2. for a day whose sources changed, read its rows through the reader (archived rows only) and
   compare their seqs with the published file's; a compaction changes the sources but not the
   rows, and then only the sources are recorded;
3. write each changed day's file, recording it as ``written`` before the object exists;
4. commit one Iceberg snapshot replacing the changed days' files (and the schema change, when
   FUSOU's schema moved);
5. mark the new files published and the replaced ones retired.

A crash after 3 leaves written rows the next run checks against the snapshot (the commit
point): named ones are published, others retired; their objects go after the grace period. A
crash after 4 leaves the same, resolved the same way. Replaced files stay readable for the grace
period, for engines still planning against an older snapshot; snapshots older than that are
expired before the files are deleted, so no snapshot left names a deleted file.

Keys whose versions may fall on different days (key fields that leave out the time field)
make a change on one day able to hide a row on another: such tables are read whole, in one
read, whenever any day changed, and every day's rows compared. Tables whose duplicates share
their time (no key fields, or the time among them) are read day by day, changed days only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata

from fusou.catalog.tables import TableInfo, TableRegistry
from fusou.clock import SYSTEM_CLOCK, Clock
from fusou.config import Settings
from fusou.cpu import run_cpu
from fusou.formats.avro_container import SEQ_FIELD
from fusou.formats.file_metadata import FileDescription
from fusou.jobs import Checkpoint, StorageJob, describe_failure
from fusou.lake import ledger
from fusou.lake.catalog import LakeLocation, open_catalog
from fusou.lake.datafile import data_file, day_table, parquet_bytes
from fusou.lake.days import DayPlan, day_slices, digest, split_by_day
from fusou.lake.expiry import delete_retired, grace_cutoff, tidy
from fusou.lake.report import LakeReport, TablePublication
from fusou.lake.schema import (
    SchemaChange,
    apply_change,
    initial_schema,
    partition_spec,
    schema_change,
    sort_order,
)
from fusou.objectstore.base import ObjectStore
from fusou.objectstore.retry import with_retries
from fusou.read.reader import Reader, ReadRequest
from fusou.storage.keys import lake_data_key
from fusou.storage.locks import LAKE_LOCK, wait_pool_lock
from fusou.storage.partitions import DAY_MS, day_name

log = logging.getLogger(__name__)

# Table properties every published table carries: what it is, and that FUSOU writes it.
SCHEMA_VERSION_PROPERTY = "fusou.schema-version"


# Days rebuilt at once: one per core.
_ENCODERS = max(1, min(2, os.cpu_count() or 1))
# Runs of one table that meet a newer schema than they started with before giving up (each is
# cheap to abandon: nothing is committed before the reading ends).
_SCHEMA_ATTEMPTS = 3


class _SchemaMoved(Exception):
    """The reader met rows of a schema newer than the one the run writes: writing them would
    drop their new fields, and the run starts over with the newer schema."""


@dataclass(frozen=True)
class _Target:
    table_id: int
    dataset_id: str
    name: str


@dataclass
class _Rebuild:
    written: list[tuple[int, int, DataFile]] = field(default_factory=list)  # (id, day, file)
    replaced: list[ledger.LakeFile] = field(default_factory=list)
    sources: dict[int, Sequence[int]] = field(default_factory=dict)
    empty: list[tuple[int, Sequence[int], bytes]] = field(default_factory=list)
    rows: int = 0

    @property
    def days_removed(self) -> int:
        """Days that had rows in the lake and have none now."""
        had = {f.day for f in self.replaced if f.row_count}
        return len(had - {day for _, day, _ in self.written})


def _keys_span_days(info: TableInfo) -> bool:
    return bool(info.key_fields) and info.time_field not in info.key_fields


class LakePublisher(StorageJob):
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        store: ObjectStore,
        registry: TableRegistry,
        checkpoint: Checkpoint | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(settings, pool, store, registry, checkpoint, clock)
        # The lake reads every block once: a cache would only hold memory.
        self._reader = Reader(settings.replace(reader_cache_bytes=0), pool, store, registry)
        assert settings.store.url is not None
        self._location = LakeLocation.of(settings.store.url)

    async def publish(self, dataset_id: str = "", table: str = "") -> LakeReport:
        """Bring every table in scope (all, a dataset's, one) in step, then delete what the
        grace period has passed for. A table's failure is reported, not raised."""
        report = LakeReport()
        for target in await self._targets(dataset_id, table):
            outcome = TablePublication(target.dataset_id, target.name)
            try:
                await self._publish_table(target, outcome)
            except Exception as exc:
                log.exception("publishing %s/%s to the lake failed", target.dataset_id, target.name)
                outcome.error = describe_failure(exc)
            report.tables.append(outcome)
        try:
            report.files_deleted = await delete_retired(
                self._settings, self._pool, self._store, dataset_id or None, self._clock
            )
        except Exception as exc:
            log.exception("deleting retired lake files failed")
            report.cleanup_error = describe_failure(exc)
        return report

    async def _targets(self, dataset_id: str, table: str) -> list[_Target]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT table_id, dataset_id, table_name FROM fusou_tables "
                "WHERE ($1 = '' OR dataset_id = $1) AND ($2 = '' OR table_name = $2) "
                "AND latest_version > 0 ORDER BY dataset_id, table_name",
                dataset_id,
                table,
            )
        return [_Target(r["table_id"], r["dataset_id"], r["table_name"]) for r in rows]

    async def _publish_table(self, target: _Target, outcome: TablePublication) -> None:
        async with wait_pool_lock(self._pool, LAKE_LOCK, target.table_id):
            for attempt in range(_SCHEMA_ATTEMPTS):
                try:
                    await self._publish_once(target, outcome)
                    return
                except _SchemaMoved:
                    # Its files are written, not committed: the next attempt retires them.
                    if attempt == _SCHEMA_ATTEMPTS - 1:
                        raise
                    log.info(
                        "%s/%s's schema moved while publishing; again",
                        target.dataset_id,
                        target.name,
                    )

    async def _publish_once(self, target: _Target, outcome: TablePublication) -> None:
        info = await self._registry.get(target.dataset_id, target.name, refresh=True)
        if info is None or info.table_id != target.table_id:
            # Purged since it was listed (and perhaps created again, under another id whose
            # lock this run does not hold): nothing of the old table may be written again.
            return
        async with self._pool.acquire() as conn:
            live = await ledger.live_files(conn, info.table_id)
            current = await ledger.current_files(conn, info.table_id)
            last = await ledger.published(
                conn, self._settings.lake.catalog, info.table_id, info.dataset_id, info.name
            )
        plan = DayPlan.of(live, [f for f in current if f.state == ledger.PUBLISHED])
        pending = any(f.state == ledger.WRITTEN for f in current)
        if not plan.stale() and not pending and last.current(info.latest.version):
            return
        catalog = await asyncio.to_thread(open_catalog, self._settings)
        try:
            await self._publish_locked(catalog, info, live, current, outcome)
        finally:
            await asyncio.to_thread(catalog.engine.dispose)

    async def _publish_locked(
        self,
        catalog: SqlCatalog,
        info: TableInfo,
        live: list[ledger.LiveFile],
        current: list[ledger.LakeFile],
        outcome: TablePublication,
    ) -> None:
        table = await asyncio.to_thread(self._load_or_create, catalog, info)
        named = await asyncio.to_thread(_snapshot_files, table)
        # The snapshot decides what a crashed run left: files it names are published, the rest
        # (written but never committed, or replaced by a commit not yet settled) retired.
        known = {f.location for f in current}
        # Empty days have no file for a snapshot to name.
        kept = [f for f in current if f.location is None or f.location in named]
        gone = [
            f.lake_file_id for f in current if f.location is not None and f.location not in named
        ]
        async with self._pool.acquire() as conn:
            await ledger.settle(
                conn,
                published=[f.lake_file_id for f in kept if f.state == ledger.WRITTEN],
                retired=gone,
                sources={},
                now_ms=self._clock.now_ms(),
            )
        # Files FUSOU did not write have no place in a table it publishes.
        foreign = [df for path, df in named.items() if path not in known]
        plan = DayPlan.of(live, kept)
        tx = table.transaction()
        change = schema_change(table.schema(), info.latest)
        if change:
            await asyncio.to_thread(_evolve, tx, change, info)
        keys_span = _keys_span_days(info)
        if change.retyped:
            days = plan.days  # the retyped columns' old ids leave with the old files
        elif plan.stale():
            days = plan.days if keys_span else plan.stale()
        else:
            days = set()
        rebuild = await self._rebuild(
            info,
            plan,
            days,
            tx,
            whole=keys_span or bool(change.retyped),
            force=bool(change.retyped),
        )
        await self._checkpoint("lake-written")
        removed = [named[f.location] for f in rebuild.replaced if f.location is not None]
        removed += foreign
        if rebuild.written or removed or change:
            table = await asyncio.to_thread(
                _commit,
                tx,
                removed,
                [df for _, _, df in rebuild.written],
                {SCHEMA_VERSION_PROPERTY: str(info.latest.version)},
            )
            outcome.committed = True
        await self._checkpoint("lake-committed")
        async with self._pool.acquire() as conn:
            await ledger.settle(
                conn,
                published=[i for i, _, _ in rebuild.written],
                retired=[f.lake_file_id for f in rebuild.replaced],
                sources=rebuild.sources,
                now_ms=self._clock.now_ms(),
                table_id=info.table_id,
                empty=rebuild.empty,
            )
        if outcome.committed:
            try:
                table = await tidy(
                    table,
                    self._store,
                    self._location,
                    info.dataset_id,
                    info.name,
                    grace_cutoff(self._settings, self._clock),
                )
            except Exception:
                # What is left is only older snapshots and their metadata: the next commit
                # or deletion run tidies again.
                log.warning(
                    "tidying %s/%s's old snapshots failed",
                    info.dataset_id,
                    info.name,
                    exc_info=True,
                )
        async with self._pool.acquire() as conn:
            await ledger.set_published(
                conn, info.table_id, info.latest.version, table.metadata_location
            )
        outcome.days_written = len(rebuild.written)
        outcome.days_removed = rebuild.days_removed
        outcome.rows_written = rebuild.rows

    def _load_or_create(self, catalog: SqlCatalog, info: TableInfo) -> Table:
        ident = (info.dataset_id, info.name)
        try:
            return catalog.load_table(ident)
        except NoSuchTableError:
            pass
        try:
            catalog.create_namespace_if_not_exists(info.dataset_id)
        except Exception:
            # Another table of a new dataset, publishing at the same moment, made it first
            # (pyiceberg looks, then inserts).
            if not catalog.namespace_exists(info.dataset_id):
                raise
        schema = initial_schema(info.latest)
        try:
            return catalog.create_table(
                ident,
                schema=schema,
                location=self._location.table(info.dataset_id, info.name),
                partition_spec=partition_spec(schema, info.time_field),
                sort_order=sort_order(schema, info.time_field),
                properties=_table_properties(info),
            )
        except TableAlreadyExistsError:
            return catalog.load_table(ident)

    async def _rebuild(
        self,
        info: TableInfo,
        plan: DayPlan,
        days: set[int],
        tx: Transaction,
        *,
        whole: bool,
        force: bool,
    ) -> _Rebuild:
        """Read ``days`` and write the files of those whose rows changed (all of them when
        ``force``). ``whole``: the table is read at once (its keys span days). Otherwise each
        day is read in slices of at most FUSOU_LAKE_FILE_ROWS rows (by the block index), one
        file per slice, so that memory holds a few slices, never a whole day."""
        out = _Rebuild()
        if not days:
            return out
        metadata = tx.table_metadata
        ordered = sorted(days)
        if whole:
            rows = await self._read(info, ordered[0] * DAY_MS, (ordered[-1] + 1) * DAY_MS)
            by_day = split_by_day(rows, info.time_field, ordered)
            slices = {day: [(day * DAY_MS, (day + 1) * DAY_MS)] for day in ordered}
        else:
            async with self._pool.acquire() as conn:
                blocks = await ledger.block_times(
                    conn, info.table_id, ordered[0] * DAY_MS, (ordered[-1] + 1) * DAY_MS
                )
            slices = {
                day: day_slices(blocks, day, self._settings.lake.file_rows) for day in ordered
            }

        async def read_slice(day: int, start: int, end: int) -> pa.Table:
            if whole:
                return by_day[day]
            return await self._read(info, start, end)

        # Days are written ENCODERS at a time, each by a task of its own: Parquet encoding
        # holds one core per file and releases the GIL, as the reader's decoding does.
        room = asyncio.Semaphore(_ENCODERS)
        writing: set[asyncio.Task[None]] = set()

        async def rebuild(day: int) -> None:
            try:
                await self._rebuild_day(
                    info, plan, day, slices[day], read_slice, out, metadata, force
                )
            finally:
                room.release()

        try:
            for day in ordered:
                await room.acquire()
                writing.add(asyncio.create_task(rebuild(day)))
                done = {t for t in writing if t.done()}
                writing -= done
                for task in done:
                    task.result()  # a failed day fails the run now
            if writing:
                await asyncio.gather(*writing)
                writing.clear()
        finally:
            for task in writing:
                task.cancel()
            if writing:
                await asyncio.gather(*writing, return_exceptions=True)
        return out

    async def _rebuild_day(
        self,
        info: TableInfo,
        plan: DayPlan,
        day: int,
        slices: list[tuple[int, int]],
        read_slice: Callable[[int, int, int], Awaitable[pa.Table]],
        out: _Rebuild,
        metadata: TableMetadata,
        force: bool,
    ) -> None:
        previous = plan.published.get(day, [])
        sources = plan.live.get(day, ())
        if len(slices) == 1:
            only = await read_slice(day, *slices[0])
            seqs = digest([only])
            count = only.num_rows
        else:
            # Two passes: the seqs first (a slice at a time), the files only if they changed.
            only = None
            parts = []
            for start, end in slices:
                part = await read_slice(day, start, end)
                parts.append(part.select([SEQ_FIELD]))
            seqs = digest(parts)
            count = sum(p.num_rows for p in parts)
            del parts
        if not count and not sources:
            out.replaced.extend(previous)  # no file reaches the day any more
            return
        same = bool(previous) and all(p.digest == seqs for p in previous)
        if same and (not force or not previous[0].row_count):
            if any(p.source_files != sources for p in previous):
                out.sources.update({p.lake_file_id: sources for p in previous})
            return
        out.replaced.extend(previous)
        if not count:
            # Remembered as empty, so that it is not read again until its sources change.
            out.empty.append((day, sources, seqs))
            return
        for start, end in slices:
            rows = only if only is not None else await read_slice(day, start, end)
            if not rows.num_rows:
                continue
            lake_file_id, df = await self._write_file(info, day, rows, sources, seqs, metadata)
            out.written.append((lake_file_id, day, df))
            out.rows += rows.num_rows

    async def _read(self, info: TableInfo, start: int, end: int) -> pa.Table:
        result = await self._reader.read(
            ReadRequest(info.dataset_id, info.name, start, end, cold_only=True, with_seqs=True)
        )
        if result.info.latest.version != info.latest.version:
            raise _SchemaMoved
        return result.table

    async def _write_file(
        self,
        info: TableInfo,
        day: int,
        rows: pa.Table,
        sources: Sequence[int],
        seqs: bytes,
        metadata: TableMetadata,
    ) -> tuple[int, DataFile]:
        schema = metadata.schema()
        key = lake_data_key(info.dataset_id, info.name, info.time_field, day_name(day * DAY_MS))
        location = self._location.uri(key)
        async with self._pool.acquire() as conn:
            lake_file_id = await ledger.add_written(
                conn, info.table_id, day, key, location, sources, rows.num_rows, seqs
            )
        description = FileDescription(
            info.dataset_id,
            info.name,
            info.latest.version,
            info.key_fields,
            info.time_field,
            SEQ_FIELD,
        )
        # A thread of its own per file (not the one CPU thread): days encode side by side.
        data = await asyncio.to_thread(_day_bytes, rows, schema, description)
        await with_retries(lambda: self._store.put(key, data), f"writing {key}")
        return lake_file_id, await run_cpu(data_file, metadata, location, data)


def _day_bytes(rows: pa.Table, schema: Schema, description: FileDescription) -> bytes:
    return parquet_bytes(day_table(rows, schema, description.time_field), description)


def _table_properties(info: TableInfo) -> dict[str, str]:
    return {
        "format-version": "2",
        "write.parquet.compression-codec": "zstd",
        # Each commit writes a metadata file; old ones go instead of piling up in the store.
        "write.metadata.delete-after-commit.enabled": "true",
        "write.metadata.previous-versions-max": "20",
        "fusou.dataset": info.dataset_id,
        "fusou.table": info.name,
        "fusou.time-field": info.time_field,
        "fusou.key-fields": json.dumps(list(info.key_fields)),
        "comment": "Published by FUSOU from its archived rows; written by FUSOU only.",
    }


def _snapshot_files(table: Table) -> dict[str, DataFile]:
    """The data files the table's current snapshot names, by location."""
    return {task.file.file_path: task.file for task in table.scan().plan_files()}


def _evolve(tx: Transaction, change: SchemaChange, info: TableInfo) -> None:
    with tx.update_schema() as update:
        apply_change(update, change, info.latest)


def _commit(
    tx: Transaction, removed: list[DataFile], added: list[DataFile], properties: dict[str, Any]
) -> Table:
    if removed:
        with tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
            for df in removed:
                overwrite.delete_data_file(df)
            for df in added:
                overwrite.append_data_file(df)
    elif added:
        with tx.update_snapshot(snapshot_properties=properties).fast_append() as append:
            for df in added:
                append.append_data_file(df)
    tx.set_properties({SCHEMA_VERSION_PROPERTY: properties[SCHEMA_VERSION_PROPERTY]})
    return tx.commit_transaction()
