"""IngestService: protobuf in, domain calls, protobuf out. No logic of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.catalog.tables import DEFAULT_TIME_FIELD, TableRegistry
from fusou.errors import InvalidArgument
from fusou.ingest.service import Ingestor
from fusou.ingest.wire import RawIngestRequest
from fusou.names import check_name
from fusou.schema.model import TableSchema
from fusou.server import metrics
from fusou.timestamps import timestamp_of_ms
from fusou.upload.uploader import Fragment, Manifest, RawUploader

Context = aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)

# A refused upload reads what the client still sends, up to these bounds, before answering.
# grpc's asyncio client reports INTERNAL ("Internal error from Core") instead of the server's
# status when one of its writes fails because the server ended the call first
# (grpc/grpc#36066); once the client has sent everything, the refusal arrives as sent.
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_MAX_SECONDS = 10.0


async def _drain(requests: AsyncIterator[ingest_pb2.UploadRawRequest]) -> None:
    drained = 0
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_MAX_SECONDS):
            async for message in requests:
                drained += message.ByteSize()
                if drained > DRAIN_MAX_BYTES:
                    break
    log.debug("drained %d bytes of a refused upload", drained)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, ingestor: Ingestor, uploader: RawUploader, registry: TableRegistry) -> None:
        self._ingestor = ingestor
        self._uploader = uploader
        self._registry = registry

    async def Ingest(  # type: ignore[override]  # registered with the raw deserializer
        self, request: RawIngestRequest, context: Context
    ) -> ingest_pb2.IngestResponse:
        result = await self._ingestor.ingest(request)
        if not result.replayed:
            metrics.INGESTED_ROWS.inc(result.rows_written)
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
        try:
            return await self._upload_raw(request_iterator)
        except Exception:
            await _drain(request_iterator)
            raise

    async def _upload_raw(
        self, request_iterator: AsyncIterator[ingest_pb2.UploadRawRequest]
    ) -> ingest_pb2.UploadRawResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "manifest":
            raise InvalidArgument("manifest", "the first message must carry the manifest")
        m = first.manifest
        manifest = Manifest(
            dataset_id=m.dataset_id,
            fragments=[Fragment(f.table, f.offset, f.length) for f in m.fragments],
            total_length=m.total_length,
            request_id=m.request_id,
        )

        async def chunks() -> AsyncIterator[bytes]:
            async for message in request_iterator:
                if message.WhichOneof("payload") != "chunk":
                    raise InvalidArgument("manifest", "only the first message may be a manifest")
                yield message.chunk

        result = await self._uploader.upload(manifest, chunks())
        if not result.replayed:
            metrics.UPLOADED_ROWS.inc(sum(f.rows for f in result.fragments))
        return ingest_pb2.UploadRawResponse(
            object_key=result.object_key,
            bytes_stored=result.bytes_stored,
            fragments=[
                ingest_pb2.RawFragmentResult(
                    table=f.table,
                    rows=f.rows,
                    min_time=timestamp_of_ms(f.min_time),
                    max_time=timestamp_of_ms(f.max_time),
                )
                for f in result.fragments
            ],
            replayed=result.replayed,
        )

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
            except RecursionError:
                raise InvalidArgument("avro_schema", "nests too deeply to be a schema") from None
            if isinstance(raw, dict) and "fusou.time_field" not in raw:
                raw = {**raw, "fusou.time_field": time_field}
            schema = TableSchema.from_avro(raw, max_fields=self._registry.max_fields)
        result = await self._registry.declare(
            request.dataset_id, request.table, time_field, list(request.key_fields), schema
        )
        return ingest_pb2.DeclareTableResponse(
            schema_version=result.info.latest.version, created=result.created
        )
