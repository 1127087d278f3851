"""Ingest requests kept as bytes until a worker process parses them.

Parsing a request of Struct rows costs as much as everything else the main process does for
it, so the main process reads only the small header (names and request id) with a message
type that lacks the row fields; protobuf skips those in C. The worker parses the whole request
(``fusou.api.ingest.request.parse_rows``).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from fusou.api.ingest.request import parse_rows
from fusou.api.ingest.v1 import ingest_pb2
from fusou.ingest.request import IngestRequest


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
    """Stands in for IngestRequest's parser: ``FromString`` reads the header only and answers
    the domain's request, whose rows ``parse_rows`` reads in a worker process."""

    # The interceptor names bad fields using the real request type's descriptor.
    DESCRIPTOR = ingest_pb2.IngestRequest.DESCRIPTOR

    @classmethod
    def FromString(cls, data: bytes) -> IngestRequest:
        header: Any = _Header.FromString(data)
        return IngestRequest(header.dataset_id, header.table, header.request_id, data, parse_rows)

    @classmethod
    def of(cls, request: ingest_pb2.IngestRequest) -> IngestRequest:
        return IngestRequest(
            request.dataset_id,
            request.table,
            request.request_id,
            request.SerializeToString(),
            parse_rows,
        )
