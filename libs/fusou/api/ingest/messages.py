"""IngestService's messages to the domain's values and back (the servicer's translation)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.timestamps import millis, timestamp_of_ms
from fusou.buffer.writer import WriteResult
from fusou.catalog.tables import UNCHANGED, DeclareResult, Unchanged
from fusou.errors import InvalidArgument
from fusou.upload.uploader import Fragment, Manifest, UploadResult


def ingest_response(result: WriteResult) -> ingest_pb2.IngestResponse:
    return ingest_pb2.IngestResponse(
        rows_written=result.rows_written,
        schema_version=result.schema_version,
        first_seq=result.first_seq,
        last_seq=result.last_seq,
        replayed=result.replayed,
    )


def upload_manifest(first: ingest_pb2.UploadRawRequest | None) -> Manifest:
    """The manifest an upload's first message (None: the stream was empty) must carry."""
    if first is None or first.WhichOneof("payload") != "manifest":
        raise InvalidArgument("manifest", "the first message must carry the manifest")
    m = first.manifest
    return Manifest(
        dataset_id=m.dataset_id,
        fragments=[Fragment(f.table, f.offset, f.length) for f in m.fragments],
        total_length=m.total_length,
        request_id=m.request_id,
    )


async def upload_chunks(
    requests: AsyncIterator[ingest_pb2.UploadRawRequest],
) -> AsyncIterator[bytes]:
    """The bundle's bytes: the chunks of the messages after the manifest."""
    async for message in requests:
        if message.WhichOneof("payload") != "chunk":
            raise InvalidArgument("manifest", "only the first message may be a manifest")
        yield message.chunk


def upload_response(result: UploadResult) -> ingest_pb2.UploadRawResponse:
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


def declare_response(result: DeclareResult) -> ingest_pb2.DeclareTableResponse:
    answer = ingest_pb2.DeclareTableResponse(
        schema_version=result.info.latest.version, created=result.created
    )
    if result.info.retention_ms is not None:
        answer.retention.FromMilliseconds(result.info.retention_ms)
    return answer


def declared_retention(request: ingest_pb2.DeclareTableRequest) -> int | Unchanged | None:
    """The retention a DeclareTable asks for, in milliseconds: UNCHANGED when unset, None for
    zero (for ever); INVALID_ARGUMENT for a negative one."""
    if not request.HasField("retention"):
        return UNCHANGED
    if request.retention.seconds < 0 or request.retention.nanos < 0:
        raise InvalidArgument("retention", "must not be negative")
    return millis(request.retention) or None
