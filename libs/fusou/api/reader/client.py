"""Receiving ReadRange answers as Arrow tables without copying each payload twice.

A generated stub parses every message into a ReadRangeResponse, copying the Arrow IPC payload
into the message and again when the field is read. Arrow messages are one length-delimited
field, so the payload is found by reading the field's tag and length, and Arrow reads it in
place. Any other message (JSON rows, the closing stats) goes through protobuf.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pyarrow as pa

from fusou.api.reader.v1 import reader_pb2

READ_RANGE_METHOD = "/fusou.reader.v1.ReaderService/ReadRange"
_ARROW_TAG = reader_pb2.ReadRangeResponse.DESCRIPTOR.fields_by_name["arrow_ipc"].number << 3 | 2


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return -1, pos


def parse_response(raw: bytes) -> reader_pb2.ReadRangeResponse | pa.Table:
    """One ReadRange message: its rows as a table when it is an Arrow message, else the
    parsed message."""
    if raw[:1] == bytes([_ARROW_TAG]):
        size, start = _varint(raw, 1)
        if size >= 0 and start + size == len(raw):
            return pa.ipc.open_stream(pa.py_buffer(raw)[start:]).read_all()
    return reader_pb2.ReadRangeResponse.FromString(raw)


def read_range_callable(channel: Any) -> Callable[..., Any]:
    """ReadRange on a ``grpc`` or ``grpc.aio`` channel, answering with ``parse_response``."""
    return channel.unary_stream(  # type: ignore[no-any-return]
        READ_RANGE_METHOD,
        request_serializer=reader_pb2.ReadRangeRequest.SerializeToString,
        response_deserializer=parse_response,
    )


def arrow_of(message: reader_pb2.ReadRangeResponse | pa.Table) -> pa.Table | None:
    """The rows a message carries as Arrow, if any."""
    if isinstance(message, pa.Table):
        return message
    if message.arrow_ipc:  # framed together with other fields: parsed by protobuf
        return pa.ipc.open_stream(message.arrow_ipc).read_all()
    return None


def stats_of(message: reader_pb2.ReadRangeResponse | pa.Table) -> reader_pb2.ReadStats | None:
    """The stats the last message carries."""
    if isinstance(message, pa.Table) or not message.HasField("stats"):
        return None
    return message.stats


async def read_arrow(
    channel: Any, request: reader_pb2.ReadRangeRequest, grpc_timeout: float | None = None
) -> tuple[pa.Table | None, reader_pb2.ReadStats | None]:
    """Every row of a ReadRange call with Arrow output, as one table, and the call's stats
    (``None`` for the table when the answer held no Arrow message)."""
    parts: list[pa.Table] = []
    stats: reader_pb2.ReadStats | None = None
    stream: AsyncIterator[Any] = read_range_callable(channel)(request, timeout=grpc_timeout)
    async for message in stream:
        part = arrow_of(message)
        if part is not None:
            parts.append(part)
        stats = stats_of(message) or stats
    return (pa.concat_tables(parts) if parts else None), stats
