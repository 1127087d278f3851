"""ReadRange: plan from the catalog, fetch and decode the overlapping cold blocks, read the hot
rows, merge them under the one dedup rule, and hand back time-ordered batches.

Hot rows and the cold plan come from one statement, hence one snapshot, so a row being archived
meanwhile is seen exactly once (in the buffer, or in a file registered in that snapshot). Files
named by the snapshot stay readable for the delete grace period; a reader that still meets a
missing object re-plans once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fusou.catalog.tables import TableInfo, TableRegistry
from fusou.config import Settings
from fusou.cpu import run_cpu, run_cpu_unless_small
from fusou.errors import FieldViolation, InvalidArgument, NotFound, Unavailable
from fusou.formats.avro_container import INGESTED_AT_FIELD
from fusou.names import name_problem
from fusou.objectstore.base import ObjectNotFound, ObjectStore
from fusou.read.cache import BlockCache
from fusou.read.decode import decode_hot_rows
from fusou.read.deletions import DELETIONS_JSON, Deletion, deletions_of, drop_deleted
from fusou.read.fetch import FetchStats, Span, fetch_spans
from fusou.read.files import BlockRef, FileRef, decode_file_blocks
from fusou.read.filters import Filter, apply_filters, filter_violations
from fusou.read.merge import conform_to, merge, project, read_schema
from fusou.read.prune import prunable, prune
from fusou.schema.model import TableSchema
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS, bounds_text

log = logging.getLogger(__name__)


# Merging or encoding fewer rows than this takes well under a millisecond on the event loop,
# less than a round trip to the CPU thread costs the request.
SMALL_RESULT_ROWS = 16_384
# Judging fewer blocks than this against filters takes well under a millisecond.
_SMALL_PLAN = 256


@dataclass(frozen=True)
class ReadRequest:
    dataset_id: str
    table: str
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive
    columns: Sequence[str] = ()
    limit: int = 0
    # False when the client's end is not after its start at the client's precision (the
    # millisecond bounds alone may be equal for a sub-millisecond range, which is just empty).
    ordered: bool = True
    # Not on the wire: the lake publishes archived rows only, and tells a day's rows by their
    # seqs (kept as the ``SEQ_FIELD`` column when ``with_seqs``).
    cold_only: bool = False
    with_seqs: bool = False
    filters: Sequence[Filter] = ()


@dataclass
class ReadStats:
    rows_returned: int = 0
    hot_rows: int = 0
    cold_rows: int = 0
    blocks_fetched: int = 0
    bytes_fetched: int = 0
    get_requests: int = 0
    cache_hits: int = 0
    duplicates_removed: int = 0
    replans: int = 0
    rows_filtered: int = 0
    blocks_pruned: int = 0


@dataclass
class ReadResult:
    table: pa.Table
    info: TableInfo
    stats: ReadStats = field(default_factory=ReadStats)


# One statement, so one snapshot: hot rows and the cold plan agree without a transaction
# (a row being archived meanwhile is in exactly one of them), in a single round trip. Columns
# come back as arrays and the hot records as one joined bytea, which the driver decodes far
# faster than arrays of composite rows. The aggregates of one row see their input in the same
# order, so the arrays line up; the sort only makes each schema version one run (were it lost,
# a version would come in several runs, each decoded alone: slower, still right).
_SNAPSHOT = """
SELECT EXISTS (SELECT 1 FROM fusou_tables WHERE table_id = $1) AS table_exists,
       {deletions} AS deletions, h.*, f.*, b.*
FROM (SELECT array_agg(schema_version) AS hot_versions, array_agg(seq) AS hot_seqs,
             array_agg(ingested_at) AS hot_ingested, array_agg(length(record)) AS hot_lengths,
             string_agg(record, ''::bytea) AS hot_records
      FROM (SELECT schema_version, seq, ingested_at, record FROM fusou_buffer
            WHERE table_id = $1 AND event_time >= $2 AND event_time < $3 AND $4
            ORDER BY schema_version, seq) sorted) h,
     (SELECT array_agg(f.file_id) AS file_ids, array_agg(o.object_key) AS file_keys,
             array_agg(f.header) AS file_headers, array_agg(f.schema_version) AS file_versions,
             array_agg(f.format = 'parquet') AS file_parquet,
             array_agg(f.byte_offset) AS file_offsets, array_agg(f.byte_length) AS file_lengths,
             array_agg(f.first_seq) AS file_first_seqs, array_agg(f.ingested_at) AS file_ingested
      FROM fusou_files f JOIN fusou_objects o USING (object_id)
      WHERE f.table_id = $1 AND f.state = 'active'
        AND f.min_time < $3 AND f.max_time >= $2) f,
     (SELECT array_agg(file_id) AS block_files, array_agg(byte_offset) AS block_offsets,
             array_agg(byte_length) AS block_lengths, array_agg(first_row) AS block_first_rows,
             array_agg(min_time) AS block_min_times, array_agg(max_time) AS block_max_times,
             array_agg(column_stats) AS block_stats
      FROM (SELECT b.file_id, b.byte_offset, b.byte_length, b.block_no, b.first_row,
                   b.min_time, b.max_time,
                   -- Of the statistics, only the filtered columns' (none without filters).
                   CASE WHEN $5::text[] IS NOT NULL AND b.column_stats IS NOT NULL THEN
                     jsonb_build_object(
                       'rows', b.column_stats -> 'rows',
                       'columns', (SELECT coalesce(jsonb_object_agg(c, b.column_stats -> 'columns' -> c)
                                                   FILTER (WHERE b.column_stats -> 'columns' ? c),
                                                   '{}'::jsonb)
                                   FROM unnest($5::text[]) AS c))::text
                   END AS column_stats
            FROM fusou_files f JOIN fusou_blocks b USING (file_id)
            WHERE f.table_id = $1 AND f.state = 'active'
              AND f.min_time < $3 AND f.max_time >= $2
              AND b.min_time < $3 AND b.max_time >= $2
            ORDER BY b.file_id, b.block_no) sorted) b
""".replace("{deletions}", DELETIONS_JSON)


@dataclass(frozen=True)
class _HotRows:
    """The buffer's rows of a read, grouped by schema version: their datums laid end to end in
    one bytes object, and per-row arrays."""

    versions: npt.NDArray[np.int32]
    seqs: npt.NDArray[np.int64]
    ingested: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]  # row i is data[offsets[i]:offsets[i + 1]]
    data: bytes

    @classmethod
    def from_snapshot(cls, snapshot: asyncpg.Record) -> _HotRows:
        lengths = snapshot["hot_lengths"] or []
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(
            np.asarray(snapshot["hot_versions"] or [], dtype=np.int32),
            np.asarray(snapshot["hot_seqs"] or [], dtype=np.int64),
            np.asarray(snapshot["hot_ingested"] or [], dtype=np.int64),
            offsets,
            snapshot["hot_records"] or b"",
        )

    def runs(self) -> list[tuple[int, int, int]]:
        """(version, first row, end row) of each version's rows."""
        edges = np.flatnonzero(np.diff(self.versions)) + 1
        starts = [0, *edges.tolist()]
        ends = [*edges.tolist(), len(self.versions)]
        return [
            (int(self.versions[lo]), lo, hi) for lo, hi in zip(starts, ends, strict=True) if hi > lo
        ]


# Decoding and conforming in one call: one trip to the CPU thread per file or version.
def _hot_part(
    schema: TableSchema, latest: TableSchema, hot: _HotRows, lo: int, hi: int
) -> pa.Table:
    datums = memoryview(hot.data)[hot.offsets[lo] : hot.offsets[hi]]
    table = decode_hot_rows(schema, datums, hi - lo, hot.seqs[lo:hi], hot.ingested[lo:hi])
    return conform_to(table, latest)


def _merge_and_project(
    parts: list[pa.Table], deletions: list[Deletion], info: TableInfo, req: ReadRequest
) -> tuple[pa.Table, int, int]:
    """The answer, the duplicates the dedup rule removed, and the rows the filters left out
    (after it: a filter never changes which version of a key wins). Deleted rows go first:
    as if they had never been written."""
    parts, _ = drop_deleted(parts, deletions, info.latest)
    merged, duplicates = merge(parts, info.latest, info.key_fields, req.start, req.end)
    kept = apply_filters(merged, req.filters)
    filtered = merged.num_rows - kept.num_rows
    if req.with_seqs:
        return kept.drop_columns([INGESTED_AT_FIELD]), duplicates, filtered
    return project(kept, info.latest, req.columns, req.limit), duplicates, filtered


class Reader:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        store: ObjectStore,
        registry: TableRegistry,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._store = store
        self._registry = registry
        self.cache = BlockCache(settings.reader.cache_bytes)

    def validate(self, req: ReadRequest) -> None:
        violations: list[FieldViolation] = []
        for name, value in (("dataset_id", req.dataset_id), ("table", req.table)):
            problem = name_problem(value)
            if problem is not None:
                violations.append(FieldViolation(name, problem))
        for bound, ms in (("start_time", req.start), ("end_time", req.end)):
            # Exclusive ends reach one past the last instant stored.
            if not MIN_TIME_MS <= ms <= MAX_TIME_MS + 1:
                violations.append(FieldViolation(bound, f"must be {bounds_text()}"))
        if req.end < req.start or not req.ordered:
            violations.append(FieldViolation("end_time", "must be after start_time"))
        if req.limit < 0:
            violations.append(FieldViolation("limit", "must not be negative"))
        if violations:
            raise InvalidArgument.many(violations)

    async def _checked(self, req: ReadRequest) -> TableInfo:
        """The table ``req`` reads, once the request is found valid for it."""
        self.validate(req)
        info = await self._registry.get(req.dataset_id, req.table)
        if info is None:
            raise NotFound(f"no table {req.table!r} in dataset {req.dataset_id!r}")
        problems = self._request_violations(req, info)
        if problems:
            # The cached schema may lag behind another process: look again before refusing.
            info = await self._registry.get(req.dataset_id, req.table, refresh=True) or info
            problems = self._request_violations(req, info)
        if problems:
            raise InvalidArgument.many(problems)
        return info

    async def answer_schema(self, req: ReadRequest) -> tuple[pa.Schema, TableInfo]:
        """The columns ``req``'s answer will have, as the table's schema now stands (a schema
        evolving before the read may add some), without reading."""
        info = await self._checked(req)
        empty = read_schema(info.latest).empty_table()
        return project(empty, info.latest, req.columns, 0).schema, info

    async def read(self, req: ReadRequest) -> ReadResult:
        info = await self._checked(req)
        stats = ReadStats()
        for attempt in range(2):
            try:
                info, parts, deletions = await self._gather(info, req, stats)
                break
            except ObjectNotFound as missing:
                if attempt == 1:
                    raise Unavailable(
                        f"object {missing.key} disappeared twice while reading; retry"
                    ) from None
                # Compaction replaced files after we planned: plan again from the catalog.
                log.info("object %s is gone; re-planning the read", missing.key)
                stats = ReadStats(replans=1)
        small = sum(p.num_rows for p in parts) < SMALL_RESULT_ROWS
        out, duplicates, filtered = await run_cpu_unless_small(
            small, _merge_and_project, parts, deletions, info, req
        )
        stats.duplicates_removed = duplicates
        stats.rows_filtered = filtered
        stats.rows_returned = out.num_rows
        return ReadResult(out, info, stats)

    @staticmethod
    def _request_violations(req: ReadRequest, info: TableInfo) -> list[FieldViolation]:
        """The columns and filters the table's schema does not have or take."""
        unknown = [
            FieldViolation("columns", f"unknown column {c!r}")
            for c in req.columns
            if info.latest.get(c) is None
        ]
        return unknown + filter_violations(req.filters, info.latest)

    async def _gather(
        self, info: TableInfo, req: ReadRequest, stats: ReadStats
    ) -> tuple[TableInfo, list[pa.Table], list[Deletion]]:
        async with self._pool.acquire() as conn:
            snapshot = await conn.fetchrow(
                _SNAPSHOT,
                info.table_id,
                req.start,
                req.end,
                not req.cold_only,
                sorted({f.column for f in req.filters}) or None,
            )
        assert snapshot is not None
        if not snapshot["table_exists"]:
            # The cached table was purged: read the table of that name now, if there is one.
            fresh = await self._registry.get(info.dataset_id, info.name, refresh=True)
            if fresh is None or fresh.table_id == info.table_id:
                raise NotFound(f"no table {info.name!r} in dataset {info.dataset_id!r}")
            problems = self._request_violations(req, fresh)
            if problems:
                raise InvalidArgument.many(problems)
            return await self._gather(fresh, req, stats)
        hot = _HotRows.from_snapshot(snapshot)
        files = {
            row[0]: FileRef(row[0], row[1], bytes(row[2]), *row[3:])
            for row in zip(
                snapshot["file_ids"] or [],
                snapshot["file_keys"] or [],
                snapshot["file_headers"] or [],
                snapshot["file_versions"] or [],
                snapshot["file_parquet"] or [],
                snapshot["file_offsets"] or [],
                snapshot["file_lengths"] or [],
                snapshot["file_first_seqs"] or [],
                snapshot["file_ingested"] or [],
                strict=True,
            )
        }
        plan = [
            BlockRef(files[file_id], *placed)
            for file_id, *placed in zip(
                snapshot["block_files"] or [],
                snapshot["block_offsets"] or [],
                snapshot["block_lengths"] or [],
                snapshot["block_first_rows"] or [],
                snapshot["block_min_times"] or [],
                snapshot["block_max_times"] or [],
                snapshot["block_stats"] or [],
                strict=True,
            )
        ]
        runs = hot.runs()
        newest = max([*(r[0] for r in runs), *(f.version for f in files.values())], default=0)
        if newest > info.latest.version:
            # Another process evolved the schema after we cached it: conform to the newer one.
            info = await self._registry.get(info.dataset_id, info.name, refresh=True) or info
            # A column may have widened under the filters (a null-only one taking a type).
            problems = filter_violations(req.filters, info.latest)
            if problems:
                raise InvalidArgument.many(problems)
        if req.filters:
            # Judged by the newest schema: what a column's type allows to compare.
            plan, stats.blocks_pruned = await run_cpu_unless_small(
                len(plan) < _SMALL_PLAN, prune, plan, prunable(req.filters, info), info.latest
            )
        parts: list[pa.Table] = []
        stats.hot_rows = len(hot.seqs)
        for version, lo, hi in runs:
            schema = await self._registry.version(info.table_id, version)
            small = hi - lo < SMALL_RESULT_ROWS // 4  # decoding costs more per row than merging
            parts.append(
                await run_cpu_unless_small(small, _hot_part, schema, info.latest, hot, lo, hi)
            )
        parts.extend(await self._cold(info, plan, stats))
        return info, parts, deletions_of(snapshot["deletions"])

    async def _cold(
        self, info: TableInfo, blocks: list[BlockRef], stats: ReadStats
    ) -> list[pa.Table]:
        tables: dict[BlockRef, pa.Table] = {}
        wanted: list[BlockRef] = []
        version = info.latest.version
        for b in blocks:
            # Cached conformed to the latest schema; a newer schema makes new entries.
            cached = self.cache.get((b.span, version))
            if cached is not None:
                tables[b] = cached
                stats.cache_hits += 1
            else:
                wanted.append(b)
        s = self._settings
        fetch_stats = FetchStats()
        fetched = await fetch_spans(
            self._store,
            [b.span for b in wanted],
            max_gap=s.reader.coalesce_gap_bytes,
            max_request=s.reader.max_request_bytes,
            concurrency=s.reader.max_concurrent_gets,
            stats=fetch_stats,
        )
        stats.get_requests += fetch_stats.gets
        stats.bytes_fetched += fetch_stats.bytes
        stats.blocks_fetched += len(wanted)
        by_file: dict[int, list[BlockRef]] = {}
        for b in wanted:
            by_file.setdefault(b.file.file_id, []).append(b)
        decoded = await asyncio.gather(
            *(self._decode_file(info, refs, fetched) for refs in by_file.values())
        )
        for refs, file_tables in zip(by_file.values(), decoded, strict=True):
            for ref, table in zip(refs, file_tables, strict=True):
                self.cache.put((ref.span, version), table)
                tables[ref] = table
        out = [tables[b] for b in blocks]
        stats.cold_rows = sum(t.num_rows for t in out)
        return out

    async def _decode_file(
        self, info: TableInfo, refs: list[BlockRef], fetched: dict[Span, bytes]
    ) -> list[pa.Table]:
        blocks = [fetched[r.span] for r in refs]
        return await run_cpu(decode_file_blocks, refs, blocks, info.latest)
