"""Ingest requests kept as bytes until a worker process parses them.

Parsing a request of Struct rows costs as much as everything else the main process does for
it, so the main process reads only the small header (names and request id) with a message
type that lacks the row fields; protobuf skips those in C. The worker parses the whole request.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from fusou.api.ingest.v1 import ingest_pb2


def _header_class() -> type[Message]:
    file = descriptor_pb2.FileDescriptorProto(
        name="fusou/internal/ingest_header.proto", package="fusou.internal", syntax="proto3"
    )
    message = file.message_type.add(name="IngestRequestHeader")
    for name, number in (("dataset_id", 1), ("table", 2), ("request_id", 3)):
        message.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    # A private pool: reflection and the default pool must not see this type.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("fusou.internal.IngestRequestHeader")
    )


_Header = _header_class()


class RawIngestRequest:
    """The request's bytes plus its header fields. Stands in for IngestRequest in the servicer."""

    # The interceptor names bad fields using the real request type's descriptor.
    DESCRIPTOR = ingest_pb2.IngestRequest.DESCRIPTOR

    __slots__ = ("data", "dataset_id", "request_id", "table")

    def __init__(self, data: bytes, dataset_id: str, table: str, request_id: str) -> None:
        self.data = data
        self.dataset_id = dataset_id
        self.table = table
        self.request_id = request_id

    @classmethod
    def FromString(cls, data: bytes) -> RawIngestRequest:
        header = _Header.FromString(data)
        return cls(data, header.dataset_id, header.table, header.request_id)  # type: ignore[attr-defined]

    @classmethod
    def of(cls, request: ingest_pb2.IngestRequest) -> RawIngestRequest:
        return cls(
            request.SerializeToString(), request.dataset_id, request.table, request.request_id
        )
