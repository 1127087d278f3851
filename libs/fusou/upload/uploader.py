"""UploadRaw: a bundle of concatenated Parquet fragments, streamed to ``raw/`` and registered.

The order of steps keeps "a bad bundle stores nothing": the manifest is checked before any byte
is read; each fragment is checked (Parquet, the table's time field, types that fit the table)
as its last byte streams past, and a bad one aborts the upload, which the store then discards;
only a complete, valid bundle is registered, in one transaction with its schema versions, its
sequence numbers and the dataset's compaction flag. A crash between upload and commit leaves an
unregistered object under ``raw/``, deleted by the compactor's sweep after the grace period.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from fusou.catalog.files import BlockEntry, FileEntry, register_file_entry, register_object
from fusou.catalog.tables import DEFAULT_TIME_FIELD, TableInfo
from fusou.cpu import run_cpu
from fusou.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument
from fusou.jobs import StorageJob
from fusou.lake.run import publish
from fusou.names import name_problem
from fusou.objectstore.base import ObjectNotFound
from fusou.records.limits import RowLimits
from fusou.schema.evolve import merge_batch_schema
from fusou.schema.model import FieldType, TableSchema
from fusou.storage.keys import raw_key
from fusou.storage.replay import Answers, record_answer, stored_answer
from fusou.upload.fragments import FragmentInfo, inspect_fragment

log = logging.getLogger(__name__)

MAX_REQUEST_ID_LENGTH = 256
MAX_FRAGMENTS = 10_000


@dataclass(frozen=True)
class Fragment:
    table: str
    offset: int
    length: int


@dataclass(frozen=True)
class Manifest:
    dataset_id: str
    fragments: Sequence[Fragment]
    total_length: int
    request_id: str = ""


@dataclass(frozen=True)
class FragmentResult:
    table: str
    rows: int
    min_time: int
    max_time: int


@dataclass(frozen=True)
class UploadResult:
    object_key: str
    bytes_stored: int
    fragments: tuple[FragmentResult, ...]
    replayed: bool = False

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "object_key": self.object_key,
                "bytes_stored": self.bytes_stored,
                "fragments": [[f.table, f.rows, f.min_time, f.max_time] for f in self.fragments],
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> UploadResult:
        data = json.loads(raw)
        return cls(
            data["object_key"],
            data["bytes_stored"],
            tuple(FragmentResult(*f) for f in data["fragments"]),
            replayed=True,
        )


def check_manifest(manifest: Manifest, max_fragment_bytes: int) -> None:
    violations: list[FieldViolation] = []
    problem = name_problem(manifest.dataset_id)
    if problem is not None:
        violations.append(FieldViolation("manifest.dataset_id", problem))
    if len(manifest.request_id) > MAX_REQUEST_ID_LENGTH:
        violations.append(
            FieldViolation(
                "manifest.request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters"
            )
        )
    if manifest.total_length <= 0:
        violations.append(FieldViolation("manifest.total_length", "must be positive"))
    if not manifest.fragments:
        violations.append(FieldViolation("manifest.fragments", "names no fragment"))
    if len(manifest.fragments) > MAX_FRAGMENTS:
        violations.append(
            FieldViolation("manifest.fragments", f"more than {MAX_FRAGMENTS} fragments")
        )
    for i, f in enumerate(manifest.fragments):
        label = f"manifest.fragments[{i}]"
        problem = name_problem(f.table)
        if problem is not None:
            violations.append(FieldViolation(f"{label}.table", problem))
        if f.offset < 0:
            violations.append(FieldViolation(f"{label}.offset", "must not be negative"))
        if f.length <= 0:
            violations.append(FieldViolation(f"{label}.length", "must be positive"))
        elif f.length > max_fragment_bytes:
            violations.append(
                FieldViolation(
                    f"{label}.length",
                    f"{f.length} bytes is over the limit of {max_fragment_bytes} "
                    "(FUSOU_UPLOAD_MAX_FRAGMENT_BYTES)",
                )
            )
        if f.offset >= 0 and f.length > 0 and f.offset + f.length > manifest.total_length:
            violations.append(
                FieldViolation(
                    label,
                    f"bytes [{f.offset}, {f.offset + f.length}) lie outside the bundle's "
                    f"{manifest.total_length} bytes",
                )
            )
    order = sorted(range(len(manifest.fragments)), key=lambda i: manifest.fragments[i].offset)
    for a, b in itertools.pairwise(order):
        fa, fb = manifest.fragments[a], manifest.fragments[b]
        if fa.length > 0 and fb.offset < fa.offset + fa.length:
            violations.append(
                FieldViolation(f"manifest.fragments[{b}]", f"overlaps manifest.fragments[{a}]")
            )
    if violations:
        raise InvalidArgument.many(violations)


def _label(i: int) -> str:
    return f"fragments[{i}]"


class _Collector:
    """Follows the bundle's bytes as they stream past, checking each fragment when its last
    byte arrives; holds at most one fragment's bytes."""

    def __init__(
        self,
        manifest: Manifest,
        time_fields: dict[str, str],
        schemas: dict[str, TableSchema],
        limits: RowLimits,
    ) -> None:
        self._manifest = manifest
        self._time_fields = time_fields
        self._limits = limits
        # Each table's schema widened by the fragments seen so far: a conflict between two
        # fragments, or with the table, is found before anything is stored.
        self._schemas = dict(schemas)
        self._order = sorted(
            range(len(manifest.fragments)), key=lambda i: manifest.fragments[i].offset
        )
        self._next = 0
        self._buffer = bytearray()
        self.position = 0
        self.infos: dict[int, FragmentInfo] = {}

    async def feed(self, chunk: bytes) -> None:
        end = self.position + len(chunk)
        if end > self._manifest.total_length:
            raise InvalidArgument(
                "chunk",
                f"the bundle is longer than manifest.total_length "
                f"({self._manifest.total_length} bytes)",
            )
        while self._next < len(self._order):
            i = self._order[self._next]
            frag = self._manifest.fragments[i]
            lo = max(frag.offset, self.position)
            hi = min(frag.offset + frag.length, end)
            if lo >= end:
                break
            if hi > lo:
                self._buffer += chunk[lo - self.position : hi - self.position]
            if hi < frag.offset + frag.length:
                break  # the fragment continues in the next chunk
            await self._check(i, frag)
            self._next += 1
        self.position = end

    async def _check(self, i: int, frag: Fragment) -> None:
        data, self._buffer = bytes(self._buffer), bytearray()
        label = _label(i)
        info = await run_cpu(
            inspect_fragment, data, self._time_fields[frag.table], label, self._limits
        )
        merged = merge_batch_schema(
            self._schemas[frag.table],
            info.types,
            field_prefix=f"{label}.",
            max_fields=self._limits.max_fields,
        )
        self._schemas[frag.table] = merged.schema
        self.infos[i] = info

    def table_types(self) -> dict[str, dict[str, FieldType]]:
        """Each table's fields as its fragments and the table's schema have them."""
        return {
            name: {f.name: f.type for f in schema.fields} for name, schema in self._schemas.items()
        }

    def finish(self) -> None:
        if self.position != self._manifest.total_length:
            raise InvalidArgument(
                "manifest.total_length",
                f"the manifest says {self._manifest.total_length} bytes but the bundle has "
                f"{self.position}",
            )
        assert len(self.infos) == len(self._manifest.fragments)


class RawUploader(StorageJob):
    async def upload(self, manifest: Manifest, chunks: AsyncIterator[bytes]) -> UploadResult:
        check_manifest(manifest, self._settings.upload.max_fragment_bytes)
        if manifest.request_id:
            previous = await self._previous(manifest)
            if previous is not None:
                return previous
        tables: dict[str, TableInfo | None] = {}
        for f in manifest.fragments:
            if f.table not in tables:
                tables[f.table] = await self._registry.get(manifest.dataset_id, f.table)
        time_fields = {
            name: info.time_field if info else DEFAULT_TIME_FIELD for name, info in tables.items()
        }
        schemas = {
            name: info.latest if info else TableSchema.initial(time_fields[name])
            for name, info in tables.items()
        }
        collector = _Collector(manifest, time_fields, schemas, RowLimits.of(self._settings))

        async def body() -> AsyncGenerator[bytes, None]:
            async for chunk in chunks:
                if chunk:
                    await collector.feed(chunk)
                    yield chunk
            collector.finish()
            await self._checkpoint("upload")

        key = raw_key(manifest.dataset_id)
        stream = body()
        try:
            stored = await self._store.put(key, stream)
        finally:
            await stream.aclose()
        await self._checkpoint("uploaded")
        try:
            result = await self._register(manifest, key, stored.size, collector, time_fields)
        except (InvalidArgument, FailedPrecondition, Aborted):
            # The table changed under the upload (a concurrent schema), or its dataset is being
            # purged: nothing is registered.
            await self._store.delete(key)
            raise
        await self._publish(manifest.dataset_id, sorted(tables))
        return result

    async def _publish(self, dataset_id: str, tables: list[str]) -> None:
        """Publish the uploaded tables to the lake. The upload is committed whatever happens
        here, and its dataset flagged for compaction, whose run publishes what this missed."""
        for table in tables:
            report = await publish(self, dataset_id, table)
            if report.error:
                log.error(
                    "the upload is stored; publishing it to the lake failed: %s", report.error
                )

    async def _previous(self, manifest: Manifest) -> UploadResult | None:
        async with self._pool.acquire() as conn:
            raw = await stored_answer(
                conn, Answers.UPLOAD, manifest.dataset_id, manifest.request_id
            )
        return None if raw is None else UploadResult.from_json(raw)

    async def _register(
        self,
        manifest: Manifest,
        key: str,
        size: int,
        collector: _Collector,
        time_fields: Mapping[str, str],
    ) -> UploadResult:
        infos = collector.infos
        ds = manifest.dataset_id
        ingested_at = self._clock.now_ms()
        result = UploadResult(
            key,
            size,
            tuple(
                FragmentResult(f.table, infos[i].rows, infos[i].min_time, infos[i].max_time)
                for i, f in enumerate(manifest.fragments)
            ),
        )
        evolved: list[TableInfo] = []
        async with self._pool.acquire() as conn, conn.transaction():
            if manifest.request_id and not await record_answer(
                conn, Answers.UPLOAD, ds, manifest.request_id, result.to_json()
            ):
                # A concurrent retry of the same request won: answer with its answer.
                raw = await stored_answer(conn, Answers.UPLOAD, ds, manifest.request_id)
                assert raw is not None, "a conflicting request id must have a stored answer"
                await self._store.delete(key)
                return UploadResult.from_json(raw)
            infos_by_table: dict[str, TableInfo] = {}
            # In name order: two uploads locking the same tables in opposite orders would
            # deadlock.
            for name, types in sorted(collector.table_types().items()):
                info = await self._registry.evolve_in(conn, ds, name, types)
                if info.time_field != time_fields[name]:
                    # The cached table the fragments were read by was purged, and this one
                    # keeps its time in another field.
                    await self._registry.get(ds, name, refresh=True)
                    raise Aborted(
                        f"table {ds}/{name} was purged and created again while uploading; "
                        "upload again"
                    )
                infos_by_table[name] = info
                evolved.append(info)
            # Past the fence, no purge can start before this commits; one that ended before
            # it may have deleted the bundle (uploaded before the purge listed the store).
            try:
                await self._store.head(key)
            except ObjectNotFound:
                raise Aborted(f"dataset {ds!r} was purged while uploading; upload again") from None
            total_rows = sum(info.rows for info in infos.values())
            next_seq = int(await conn.fetchval("SELECT fusou_allocate_seq($1)", total_rows))
            object_id = await register_object(conn, ds, key, "raw", size)
            for i, f in enumerate(manifest.fragments):
                frag = infos[i]
                await register_file_entry(
                    conn,
                    object_id,
                    FileEntry(
                        table_id=infos_by_table[f.table].table_id,
                        file_format="parquet",
                        byte_offset=f.offset,
                        byte_length=f.length,
                        row_count=frag.rows,
                        uncompressed_bytes=frag.decoded_bytes,
                        min_time=frag.min_time,
                        max_time=frag.max_time,
                        schema_version=infos_by_table[f.table].latest.version,
                        codec=None,
                        header=frag.footer,
                        blocks=[
                            BlockEntry(
                                f.offset + g.offset,
                                g.length,
                                g.rows,
                                g.min_time,
                                g.max_time,
                                g.first_row,
                            )
                            for g in frag.row_groups
                        ],
                        first_seq=next_seq,
                        ingested_at=ingested_at,
                    ),
                )
                next_seq += frag.rows
            await conn.execute(
                "UPDATE fusou_datasets SET compaction_needed = true WHERE dataset_id = $1", ds
            )
            await self._checkpoint("commit")
        for info in evolved:
            self._registry.remember(info)
        await self._checkpoint("committed")
        log.info("stored raw bundle %s: %d fragments, %d bytes", key, len(infos), size)
        return result
