"""IngestService: protobuf in, domain calls, protobuf out. No logic of its own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from fusou.catalog.tables import DEFAULT_TIME_FIELD, TableRegistry
from fusou.errors import InvalidArgument
from fusou.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.ingestion.service import Ingestor
from fusou.ingestion.wire import RawIngestRequest
from fusou.names import check_name
from fusou.schema.model import TableSchema

Context = aio.ServicerContext[Any, Any]


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, ingestor: Ingestor, registry: TableRegistry) -> None:
        self._ingestor = ingestor
        self._registry = registry

    async def Ingest(  # type: ignore[override]  # registered with the raw deserializer
        self, request: RawIngestRequest, context: Context
    ) -> ingest_pb2.IngestResponse:
        result = await self._ingestor.ingest(request)
        return ingest_pb2.IngestResponse(
            rows_written=result.rows_written,
            schema_version=result.schema_version,
            first_seq=result.first_seq,
            last_seq=result.last_seq,
            replayed=result.replayed,
        )

    async def UploadRaw(
        self, request_iterator: AsyncIterator[ingest_pb2.UploadRawRequest], context: Context
    ) -> ingest_pb2.UploadRawResponse:
        raise NotImplementedError("UploadRaw is not implemented yet")

    async def DeclareTable(
        self, request: ingest_pb2.DeclareTableRequest, context: Context
    ) -> ingest_pb2.DeclareTableResponse:
        check_name("dataset_id", request.dataset_id)
        check_name("table", request.table)
        time_field = request.time_field or DEFAULT_TIME_FIELD
        schema = None
        if request.avro_schema:
            try:
                raw = json.loads(request.avro_schema)
            except json.JSONDecodeError as exc:
                raise InvalidArgument("avro_schema", f"not valid JSON: {exc}") from None
            if isinstance(raw, dict) and "fusou.time_field" not in raw:
                raw = {**raw, "fusou.time_field": time_field}
            schema = TableSchema.from_avro(raw)
        result = await self._registry.declare(
            request.dataset_id, request.table, time_field, list(request.key_fields), schema
        )
        return ingest_pb2.DeclareTableResponse(
            schema_version=result.info.latest.version, created=result.created
        )
