"""ReadRange over Arrow Flight: a ticket (and a GetFlightInfo command) is a serialized
ReadRangeRequest; the answer's first message carries, as its app_metadata, the ReadRangeResponse
with the read's stats. The request's ``format`` is ignored: Flight answers in Arrow."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from google.protobuf.message import DecodeError
from pyarrow import flight

from fusou.api.reader.client import READ_RANGE_METHOD
from fusou.api.reader.v1 import reader_pb2
from fusou.errors import FieldViolation, InvalidArgument

__all__ = [
    "READ_RANGE_METHOD",
    "read_flight",
    "read_flight_table",
    "stats_metadata",
    "stats_of_metadata",
    "ticket_request",
]


def ticket_request(data: bytes) -> reader_pb2.ReadRangeRequest:
    """The ReadRangeRequest a ticket or command holds; INVALID_ARGUMENT when it holds none."""
    try:
        return reader_pb2.ReadRangeRequest.FromString(data)
    except DecodeError:
        raise InvalidArgument.many(
            [FieldViolation("ticket", "must be a serialized fusou.reader.v1.ReadRangeRequest")]
        ) from None


def stats_metadata(stats: reader_pb2.ReadStats) -> bytes:
    """A read's stats as a Flight answer's app_metadata: the ReadRangeResponse that closes a
    ReadRange answer (never empty bytes, which Flight does not deliver)."""
    return reader_pb2.ReadRangeResponse(stats=stats).SerializeToString()


def stats_of_metadata(data: bytes | None) -> reader_pb2.ReadStats | None:
    """The stats a Flight answer's app_metadata carries (None when it carries none)."""
    if not data:
        return None
    message = reader_pb2.ReadRangeResponse.FromString(data)
    return message.stats if message.HasField("stats") else None


def _chunks(stream: flight.FlightStreamReader) -> Iterator[flight.FlightStreamChunk]:
    while True:
        try:
            yield stream.read_chunk()
        except StopIteration:
            return


def _stats(chunk: flight.FlightStreamChunk) -> reader_pb2.ReadStats | None:
    metadata = chunk.app_metadata
    return stats_of_metadata(None if metadata is None else metadata.to_pybytes())


def read_flight(
    client: flight.FlightClient,
    request: reader_pb2.ReadRangeRequest,
    options: flight.FlightCallOptions | None = None,
) -> Iterator[tuple[pa.RecordBatch, reader_pb2.ReadStats | None]]:
    """The batches of a read through Flight's DoGet, the first with the read's stats."""
    stream = client.do_get(flight.Ticket(request.SerializeToString()), options)
    for chunk in _chunks(stream):
        yield chunk.data, _stats(chunk)


def read_flight_table(
    client: flight.FlightClient,
    request: reader_pb2.ReadRangeRequest,
    options: flight.FlightCallOptions | None = None,
) -> tuple[pa.Table, reader_pb2.ReadStats | None]:
    """Every row of a read through Flight as one table, and its stats."""
    stream = client.do_get(flight.Ticket(request.SerializeToString()), options)
    batches: list[pa.RecordBatch] = []
    stats: reader_pb2.ReadStats | None = None
    for chunk in _chunks(stream):
        batches.append(chunk.data)
        stats = stats or _stats(chunk)
    return pa.Table.from_batches(batches, stream.schema), stats
