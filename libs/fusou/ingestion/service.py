"""Ingest: from a validated request to committed buffer rows.

The order of steps is what makes "a rejected request writes nothing" hold: everything that can
reject (names, limits, conversion, schema conflicts) happens before the first write, and the
only write before the rows themselves is a schema version, which is committed only when the
batch fits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from google.protobuf import struct_pb2

from fusou.buffer.copy_format import BufferRows
from fusou.buffer.writer import GroupCommitWriter, WriteResult, lookup_response, now_ms
from fusou.catalog.tables import DEFAULT_TIME_FIELD, TableInfo, TableRegistry
from fusou.config import Settings
from fusou.cpu import run_cpu
from fusou.errors import FieldViolation, InvalidArgument
from fusou.names import name_problem
from fusou.records.avro_datum import encode_datums
from fusou.records.batch import Batch, batch_from_arrow_ipc, batch_from_structs, conform
from fusou.records.columns import int64_values
from fusou.records.dedup import dedup_keys
from fusou.schema.evolve import merge_batch_schema
from fusou.schema.model import TableSchema

MAX_REQUEST_ID_LENGTH = 256


@dataclass(frozen=True)
class IngestInput:
    dataset_id: str
    table: str
    request_id: str
    rows: Sequence[struct_pb2.Struct]
    arrow_ipc: bytes


class Ingestor:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, registry: TableRegistry) -> None:
        self._settings = settings
        self._pool = pool
        self._registry = registry
        self._writer = GroupCommitWriter(
            pool,
            max_rows=settings.group_commit_max_rows,
            concurrency=settings.group_commit_concurrency,
        )

    async def close(self) -> None:
        await self._writer.close()

    def validate(self, req: IngestInput) -> None:
        violations: list[FieldViolation] = []
        for field_name, value in (("dataset_id", req.dataset_id), ("table", req.table)):
            problem = name_problem(value)
            if problem is not None:
                violations.append(FieldViolation(field_name, problem))
        if len(req.request_id) > MAX_REQUEST_ID_LENGTH:
            violations.append(
                FieldViolation("request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters")
            )
        has_rows, has_arrow = len(req.rows) > 0, len(req.arrow_ipc) > 0
        if has_rows and has_arrow:
            violations.append(FieldViolation("rows", "set either rows or arrow_ipc, not both"))
        elif not has_rows and not has_arrow:
            violations.append(FieldViolation("rows", "no rows: set rows or arrow_ipc"))
        if len(req.rows) > self._settings.ingest_max_rows:
            violations.append(
                FieldViolation(
                    "rows",
                    f"{len(req.rows)} rows is over the limit of {self._settings.ingest_max_rows}",
                )
            )
        if len(req.arrow_ipc) > self._settings.ingest_max_bytes:
            violations.append(
                FieldViolation(
                    "arrow_ipc",
                    f"{len(req.arrow_ipc)} bytes is over the limit of "
                    f"{self._settings.ingest_max_bytes}",
                )
            )
        if violations:
            raise InvalidArgument.many(violations)

    async def ingest(self, req: IngestInput) -> WriteResult:
        self.validate(req)
        request_id = req.request_id or None
        if request_id is not None:
            async with self._pool.acquire() as conn:
                previous = await lookup_response(conn, req.dataset_id, request_id)
            if previous is not None:
                return previous
        info = await self._registry.get(req.dataset_id, req.table)
        time_field = info.time_field if info is not None else DEFAULT_TIME_FIELD
        batch = await run_cpu(self._convert, req, time_field)
        info, schema = await self._fit(req, info, batch)
        if info.time_field != time_field:
            # The table was declared with another time field while we converted: redo once.
            batch = await run_cpu(self._convert, req, info.time_field)
            info, schema = await self._fit(req, info, batch)
        rows = await run_cpu(_encode, batch, info, schema)
        return await self._writer.write(req.dataset_id, request_id, rows)

    def _convert(self, req: IngestInput, time_field: str) -> Batch:
        if req.rows:
            batch = batch_from_structs(req.rows, time_field)
        else:
            batch = batch_from_arrow_ipc(req.arrow_ipc, time_field)
            if batch.num_rows > self._settings.ingest_max_rows:
                raise InvalidArgument(
                    "arrow_ipc",
                    f"{batch.num_rows} rows is over the limit of {self._settings.ingest_max_rows}",
                )
        return batch

    async def _fit(
        self, req: IngestInput, info: TableInfo | None, batch: Batch
    ) -> tuple[TableInfo, TableSchema]:
        if info is not None:
            merged = merge_batch_schema(info.latest, batch.types)  # raises on conflicts
            if not merged.changed:
                return info, info.latest
        info = await self._registry.evolve(req.dataset_id, req.table, batch.types)
        return info, info.latest


def _encode(batch: Batch, info: TableInfo, schema: TableSchema) -> BufferRows:
    types = {f.name: f.type for f in schema.fields}
    table = conform(batch, types, schema.names)
    return BufferRows(
        table_id=info.table_id,
        schema_version=schema.version,
        ingested_at=now_ms(),
        event_times=int64_values(table.column(schema.time_field).combine_chunks()),
        dedup_keys=dedup_keys(table, types, info.key_fields),
        records=encode_datums(table, schema),
    )
