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

Per table, under an advisory lock (which also shields its new objects from the orphan sweep):
read the inputs through the reader's own decoding, reconcile them into the latest schema,
drop the rows the dedup rule can never return, sort by (time, seq), write Parquet, upload, and
in one transaction register the outputs and retire the inputs, checking that every input is
still active. A crash anywhere leaves the old state or the new one; replaced objects are
deleted after the grace period, unregistered ones by the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum

import pyarrow as pa

from fusou.catalog.files import FileEntry, register_file, unregistered
from fusou.catalog.tables import TableInfo
from fusou.compact.claim import CLAIM_SQL, ClaimKeeper
from fusou.compact.inputs import InputFile, candidates, in_time_order, select
from fusou.compact.output import CODEC, OutputFile, ParquetFilesWriter
from fusou.errors import Aborted, InvalidArgument, NotFound
from fusou.jobs import StorageJob, describe_failure
from fusou.names import check_name
from fusou.objectstore.retry import with_retries
from fusou.read.fetch import FetchStats, Span, fetch_spans
from fusou.read.files import decode_file_blocks, decode_whole_parquet, whole_file_span
from fusou.read.merge import merge, read_schema

log = logging.getLogger(__name__)

# Advisory lock class of "compacting table N" (the second key is the table id).
COMPACT_LOCK = 7239013
# Decoding a run's input files, apart from the codec threads that Avro decoding itself uses.
DECODE_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fusou-compact")
# A run's rewrite, apart from the CPU thread that requests (ingest, reads) share: it may take
# seconds, and they must not queue behind it.
REWRITE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusou-rewrite")
# Encoding the rewrite's row groups, while the rewrite thread prepares the next ones.
ENCODE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusou-encode")
# Inputs decoded ahead of the writer when they stream through it one by one.
DECODE_AHEAD = 2


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


def compaction_keys(info: TableInfo) -> tuple[str, ...]:
    """The dedup rule's key plus the time. Reads apply the rule among the rows of their range,
    so a row may be dropped for good only when its winner (same key, higher seq) shares its
    time: then every range holding the row holds the winner too. The whole-record key already
    includes the time."""
    if not info.key_fields or info.time_field in info.key_fields:
        return info.key_fields
    return (*info.key_fields, info.time_field)


def _rewrite(
    inputs: list[InputFile],
    fetched: dict[Span, bytes],
    info: TableInfo,
    target_bytes: int,
    row_group_rows: int,
) -> tuple[list[OutputFile], int, int]:
    """Decode, reconcile, deduplicate, sort and write the inputs (CPU work, on a thread):
    the compacted files, their rows, and the duplicates dropped.

    Inputs whose time ranges do not overlap (the common case: uploads and archives of
    successive periods) stream through the writer one by one, each sorted on its own, while
    the next one decodes; otherwise every input is decoded and sorted together.
    """
    latest = info.latest
    keys = compaction_keys(info)
    writer = ParquetFilesWriter(
        read_schema(latest), info.time_field, target_bytes, row_group_rows, ENCODE_THREAD
    )

    def decode(f: InputFile) -> list[pa.Table]:
        if f.ref.parquet:
            return [decode_whole_parquet(f.ref, fetched.pop(whole_file_span(f.ref)), latest)]
        blocks = [fetched.pop(b.span) for b in f.blocks]
        return decode_file_blocks(list(f.blocks), blocks, latest)

    ordered = in_time_order(inputs)
    duplicates = 0
    if ordered is None:
        parts = [t for tables in DECODE_THREADS.map(decode, inputs) for t in tables]
        table, duplicates = merge(parts, latest, keys, None, None)
        del parts
        writer.add(table)
        del table
        return writer.finish(), writer.rows, duplicates
    ahead = deque(DECODE_THREADS.submit(decode, f) for f in ordered[:DECODE_AHEAD])
    for i in range(len(ordered)):
        parts = ahead.popleft().result()
        if i + DECODE_AHEAD < len(ordered):
            ahead.append(DECODE_THREADS.submit(decode, ordered[i + DECODE_AHEAD]))
        table, dropped = merge(parts, latest, keys, None, None)
        duplicates += dropped
        writer.add(table)
    return writer.finish(), writer.rows, duplicates


class Compactor(StorageJob):
    @functools.cached_property
    def runner_id(self) -> str:
        """Who holds a claim, for people reading the datasets table."""
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def compact(self, options: CompactOptions) -> list[DatasetOutcome]:
        deadline = asyncio.get_running_loop().time() + self._settings.compact_timeout_ms / 1000
        if options.table and not options.dataset_id:
            raise InvalidArgument("table", "a table filter needs dataset_id")
        if options.dataset_id:
            check_name("dataset_id", options.dataset_id)
            if options.table:
                check_name("table", options.table)
            outcome = await self._dataset(options.dataset_id, options.table, deadline, True)
            await self.sweep_incomplete_writes(options.dataset_id)
            return [outcome]
        chosen = await self._scheduled()
        limit = asyncio.Semaphore(self._settings.compact_concurrency)

        async def one(dataset_id: str) -> DatasetOutcome:
            async with limit:
                return await self._dataset(dataset_id, "", deadline, False)

        outcomes = list(await asyncio.gather(*(one(d) for d in chosen)))
        await self.sweep_incomplete_writes(None)
        return outcomes

    async def _scheduled(self) -> list[str]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT dataset_id FROM fusou_datasets "
                "WHERE compaction_needed "
                "   OR (compaction_in_progress AND compaction_claim_expires_at < now()) "
                "ORDER BY last_compaction_attempt_at NULLS FIRST, dataset_id LIMIT $1",
                self._settings.compact_max_datasets_per_run,
            )
        return [r["dataset_id"] for r in rows]

    # -- one dataset ----------------------------------------------------------------------------

    async def _dataset(
        self, dataset_id: str, only_table: str, deadline: float, explicit: bool
    ) -> DatasetOutcome:
        claimed = await self._claim(dataset_id, deadline)
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
            await self._chore("sweeping orphans", self._sweep_orphans, dataset_id, chores)
        except BaseException as exc:
            await self._release(dataset_id, succeeded=False, more=True)
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
            await self._release(dataset_id, succeeded=False, more=True)
            outcome.status = Status.FAILED
            outcome.error = "; ".join([f"table {t.table}: {t.error}" for t in failed] + chores)
            return outcome
        more = cut_short or any(t.more_remaining for t in outcome.tables)
        await self._release(dataset_id, succeeded=True, more=more)
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
    def _claims(self) -> ClaimKeeper:
        return ClaimKeeper(self._pool, self.runner_id, self._settings.compact_claim_ttl_s)

    async def _claim(self, dataset_id: str, deadline: float) -> bool | None:
        """True when this run now holds the dataset (and renews the claim until it releases
        it or passes ``deadline``), False when another does, None when there is no such
        dataset."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                CLAIM_SQL, dataset_id, self.runner_id, self._settings.compact_claim_ttl_s
            )
            if row is not None:
                self._claims.keep(dataset_id, deadline)
                return True
            exists = await conn.fetchval(
                "SELECT 1 FROM fusou_datasets WHERE dataset_id = $1", dataset_id
            )
        return False if exists else None

    async def _release(self, dataset_id: str, *, succeeded: bool, more: bool) -> None:
        # Shielded: a cancelled run must still give its claim back.
        await asyncio.shield(self._release_now(dataset_id, succeeded, more))

    async def _release_now(self, dataset_id: str, succeeded: bool, more: bool) -> None:
        await self._claims.stop(dataset_id)
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE fusou_datasets SET compaction_in_progress = false, "
                "  compaction_claimed_by = NULL, compaction_claim_expires_at = NULL, "
                "  compaction_needed = compaction_needed OR $3, "
                "  last_compacted_at = CASE WHEN $2 THEN now() ELSE last_compacted_at END, "
                "  last_compaction_attempt_at = now() "
                "WHERE dataset_id = $1 AND compaction_claimed_by = $4",
                dataset_id,
                succeeded,
                more,
                self.runner_id,
            )

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

    @contextlib.asynccontextmanager
    async def _table_lock(self, table_id: int) -> AsyncIterator[bool]:
        async with self._pool.acquire() as conn:
            locked = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", COMPACT_LOCK, table_id)
            )
            try:
                yield locked
            finally:
                if locked:
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", COMPACT_LOCK, table_id)

    async def _table(self, info: TableInfo, result: TableOutcome) -> None:
        s = self._settings
        async with self._table_lock(info.table_id) as locked:
            if not locked:
                # A runner whose claim lapsed is still at work on it.
                result.more_remaining = result.skipped_busy = True
                return
            async with self._pool.acquire() as conn:
                found = await candidates(conn, info.table_id, s.compact_target_file_bytes)
            # A file registered after the run loaded the schema may be of a newer version;
            # versions commit before their files, so a reload now covers every input (an older
            # schema would drop the newer fields' values for good).
            if any(f.ref.version > info.latest.version for f in found):
                info = await self._registry.get(info.dataset_id, info.name, refresh=True) or info
            chosen = select(found, s.compact_max_fragments, s.compact_max_bytes)
            result.more_remaining = chosen.more_remaining
            if not chosen.inputs:
                return
            await self._compact_inputs(info, chosen.inputs, result)

    async def _compact_inputs(
        self, info: TableInfo, inputs: list[InputFile], result: TableOutcome
    ) -> None:
        s = self._settings
        started = time.monotonic()
        fetched = await self._fetch(info, inputs)
        await self._checkpoint("read")
        loop = asyncio.get_running_loop()
        outputs, rows, duplicates = await loop.run_in_executor(
            REWRITE_THREAD,
            _rewrite,
            inputs,
            fetched,
            info,
            s.compact_target_file_bytes,
            s.compact_row_group_rows,
        )
        del fetched
        keys = []
        for out in outputs:
            key = f"optimized/{info.dataset_id}/{info.name}-{uuid.uuid4().hex}.parquet"
            await with_retries(functools.partial(self._store.put, key, out.data), f"put {key}")
            keys.append(key)
            await self._checkpoint("upload")
        await self._checkpoint("uploaded")
        await self._commit(info, inputs, outputs, keys)
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
                max_gap=s.reader_coalesce_gap_bytes,
                max_request=s.reader_max_request_bytes,
                concurrency=s.reader_max_concurrent_gets,
                stats=FetchStats(),
            ),
            f"read inputs of {info.dataset_id}/{info.name}",
        )

    async def _commit(
        self, info: TableInfo, inputs: list[InputFile], outputs: list[OutputFile], keys: list[str]
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # Lock the inputs' objects first: two runs retiring fragments of one raw bundle
            # (one of them past its claim) must see each other's retirements, or neither
            # retires the bundle.
            await conn.execute(
                "SELECT 1 FROM fusou_objects WHERE object_id = ANY($1::bigint[]) "
                "ORDER BY object_id FOR UPDATE",
                sorted({f.object_id for f in inputs}),
            )
            retired = await conn.fetch(
                "UPDATE fusou_files SET state = 'retired', retired_at = now() "
                "WHERE file_id = ANY($1::bigint[]) AND state = 'active' RETURNING file_id",
                [f.ref.file_id for f in inputs],
            )
            if len(retired) != len(inputs):
                raise Aborted(
                    f"{len(inputs) - len(retired)} input files of {info.dataset_id}/{info.name} "
                    "were replaced meanwhile; retry"
                )
            # An object goes once none of its files is active (a raw bundle holds several).
            await conn.execute(
                "UPDATE fusou_objects o SET state = 'retired', retired_at = now() "
                "WHERE o.object_id = ANY($1::bigint[]) AND o.state = 'active' "
                "AND NOT EXISTS (SELECT 1 FROM fusou_files f "
                "                WHERE f.object_id = o.object_id AND f.state = 'active')",
                sorted({f.object_id for f in inputs}),
            )
            for out, key in zip(outputs, keys, strict=True):
                await register_file(
                    conn,
                    info.dataset_id,
                    key,
                    "optimized",
                    FileEntry(
                        table_id=info.table_id,
                        file_format="parquet",
                        byte_offset=0,
                        byte_length=len(out.data),
                        row_count=out.rows,
                        uncompressed_bytes=out.decoded_bytes,
                        min_time=out.min_time,
                        max_time=out.max_time,
                        schema_version=info.latest.version,
                        codec=CODEC,
                        header=out.footer,
                        blocks=out.blocks,
                    ),
                )
            await self._checkpoint("commit")

    # -- deleting what is no longer needed ------------------------------------------------------

    async def _delete_retired(self, dataset_id: str) -> int:
        """Delete objects retired longer ago than the grace period, then forget them. A crash
        in between leaves catalog rows of missing objects, deleted again next time."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT object_id, object_key FROM fusou_objects "
                "WHERE dataset_id = $1 AND state = 'retired' "
                "AND retired_at < now() - make_interval(secs => $2)",
                dataset_id,
                self._settings.delete_grace_s,
            )
        if not rows:
            return 0
        keys = [r["object_key"] for r in rows]
        await with_retries(lambda: self._store.delete_many(keys), f"delete {len(keys)} objects")
        ids = [r["object_id"] for r in rows]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM fusou_blocks WHERE file_id IN "
                "(SELECT file_id FROM fusou_files WHERE object_id = ANY($1::bigint[]))",
                ids,
            )
            await conn.execute("DELETE FROM fusou_files WHERE object_id = ANY($1::bigint[])", ids)
            await conn.execute("DELETE FROM fusou_objects WHERE object_id = ANY($1::bigint[])", ids)
        log.info("deleted %d retired objects of %s", len(keys), dataset_id)
        return len(keys)

    async def _sweep_orphans(self, dataset_id: str) -> int:
        """Delete objects under raw/ and optimized/ that no catalog row names, once older than
        the grace period. Uploads register within the grace period (FUSOU_DELETE_GRACE_S must
        exceed the longest upload); a table's compacted outputs are judged under its lock, so
        an upload about to be registered is never taken for an orphan."""
        horizon = self._clock.now() - dt.timedelta(seconds=self._settings.delete_grace_s)
        deleted = 0
        for prefix in (f"raw/{dataset_id}/", f"optimized/{dataset_id}/"):
            old = [i.key async for i in self._store.list(prefix) if i.last_modified < horizon]
            if not old:
                continue
            if prefix.startswith("raw/"):
                async with self._pool.acquire() as conn:
                    orphans = await unregistered(conn, old)
            else:
                orphans = await self._unregistered_outputs(dataset_id, old)
            if orphans:
                await with_retries(
                    functools.partial(self._store.delete_many, orphans),
                    f"delete {len(orphans)} orphans",
                )
                deleted += len(orphans)
                log.info("deleted %d orphaned objects of %s", len(orphans), dataset_id)
        return deleted

    async def _unregistered_outputs(self, dataset_id: str, keys: list[str]) -> list[str]:
        """Compacted outputs no catalog row names, judged under their table's lock: a run
        holds it from upload to commit, so an output about to be registered is left alone
        (and a busy table's outputs wait for a later sweep)."""
        by_table: dict[str, list[str]] = {}
        for key in keys:
            name = key.rsplit("/", 1)[-1].rsplit("-", 1)[0]  # optimized/{ds}/{table}-{uuid}...
            by_table.setdefault(name, []).append(key)
        orphans: list[str] = []
        for name, table_keys in by_table.items():
            info = await self._registry.get(dataset_id, name)
            if info is None:
                async with self._pool.acquire() as conn:
                    orphans += await unregistered(conn, table_keys)
                continue
            async with self._table_lock(info.table_id) as locked:
                if locked:
                    async with self._pool.acquire() as conn:
                        orphans += await unregistered(conn, table_keys)
        return orphans
