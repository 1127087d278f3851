"""IngestService: protobuf in, domain calls, protobuf out. No logic of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from fusou.api.ingest.messages import (
    declare_response,
    declared_retention,
    ingest_response,
    upload_chunks,
    upload_manifest,
    upload_response,
)
from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.catalog.tables import TableRegistry
from fusou.ingest.declare import declare_table
from fusou.ingest.request import IngestRequest
from fusou.ingest.service import Ingestor
from fusou.server import metrics
from fusou.upload.uploader import RawUploader

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
        self, request: IngestRequest, context: Context
    ) -> ingest_pb2.IngestResponse:
        result = await self._ingestor.ingest(request)
        if not result.replayed:
            metrics.INGESTED_ROWS.inc(result.rows_written)
        return ingest_response(result)

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
        manifest = upload_manifest(await anext(aiter(request_iterator), None))
        result = await self._uploader.upload(manifest, upload_chunks(request_iterator))
        if not result.replayed:
            metrics.UPLOADED_ROWS.inc(sum(f.rows for f in result.fragments))
        return upload_response(result)

    async def DeclareTable(
        self, request: ingest_pb2.DeclareTableRequest, context: Context
    ) -> ingest_pb2.DeclareTableResponse:
        result = await declare_table(
            self._registry,
            request.dataset_id,
            request.table,
            request.time_field,
            request.key_fields,
            request.avro_schema,
            declared_retention(request),
        )
        return declare_response(result)
