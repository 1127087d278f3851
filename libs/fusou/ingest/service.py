"""Ingest: from a request to committed buffer rows.

The order of steps is what makes "a rejected request writes nothing" hold: everything that can
reject (names, limits, parsing, conversion, schema conflicts) happens before the first write,
and the only write before the rows themselves is a schema version, which is committed only when
the batch fits it.

The CPU half (parse, convert, encode) runs in a worker process (``prepare``); this process
does the database half: idempotency, schema versions, group commit.
"""

from __future__ import annotations

import asyncpg

from fusou.buffer.writer import GroupCommitWriter, WriteResult, lookup_response
from fusou.catalog.tables import DEFAULT_TIME_FIELD, TableInfo, TableRegistry
from fusou.clock import SYSTEM_CLOCK, Clock
from fusou.config import Settings
from fusou.cpu import run_in_process
from fusou.errors import Aborted, FieldViolation, InvalidArgument, TableGone
from fusou.ingest.prepare import Limits, Prepared, TableContext, prepare
from fusou.ingest.request import IngestRequest
from fusou.names import name_problem
from fusou.records.limits import RowLimits

MAX_REQUEST_ID_LENGTH = 256
# A batch that needs a new schema version is prepared again after the version is stored; a
# concurrent writer may have grown the schema meanwhile, hence a few rounds.
MAX_SCHEMA_ROUNDS = 4


def table_context(info: TableInfo | None) -> TableContext:
    if info is None:
        return TableContext(0, DEFAULT_TIME_FIELD, (), 0, "")
    return TableContext(
        info.table_id, info.time_field, info.key_fields, info.latest.version, info.latest_json
    )


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        registry: TableRegistry,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._pool = pool
        self._registry = registry
        self._limits = Limits(
            settings.ingest.max_rows, settings.ingest.max_bytes, RowLimits.of(settings)
        )
        self._writer = GroupCommitWriter(
            pool,
            max_rows=settings.ingest.group_commit_max_rows,
            concurrency=settings.ingest.group_commit_concurrency,
        )

    async def close(self) -> None:
        await self._writer.close()

    @staticmethod
    def validate_header(req: IngestRequest) -> None:
        violations: list[FieldViolation] = []
        for field_name, value in (("dataset_id", req.dataset_id), ("table", req.table)):
            problem = name_problem(value)
            if problem is not None:
                violations.append(FieldViolation(field_name, problem))
        if len(req.request_id) > MAX_REQUEST_ID_LENGTH:
            violations.append(
                FieldViolation("request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters")
            )
        if violations:
            raise InvalidArgument.many(violations)

    async def ingest(self, req: IngestRequest) -> WriteResult:
        self.validate_header(req)
        request_id = req.request_id or None
        if request_id is not None:
            # Cheap check first: a retry is answered without parsing or encoding anything.
            async with self._pool.acquire() as conn:
                previous = await lookup_response(conn, req.dataset_id, request_id)
            if previous is not None:
                return previous
        info = await self._registry.get(req.dataset_id, req.table)
        try:
            return await self._ingest_as(req, request_id, info)
        except TableGone:
            # The cached table was purged: write to the table as the catalog has it now.
            info = await self._registry.get(req.dataset_id, req.table, refresh=True)
            return await self._ingest_as(req, request_id, info)

    async def _ingest_as(
        self, req: IngestRequest, request_id: str | None, info: TableInfo | None
    ) -> WriteResult:
        for _ in range(MAX_SCHEMA_ROUNDS):
            prepared: Prepared = await run_in_process(
                prepare,
                req.parse,
                req.data,
                table_context(info),
                self._limits,
                self._clock.now_ms(),
            )
            if prepared.rows is not None:
                return await self._writer.write(req.dataset_id, request_id, prepared.rows)
            assert prepared.grow_to is not None
            info = await self._registry.evolve(req.dataset_id, req.table, prepared.grow_to)
        raise Aborted("the table's schema kept changing while this batch was prepared; retry")
