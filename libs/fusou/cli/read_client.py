"""``fusou read DATASET TABLE --from T1 --to T2``: a time range as JSON lines or Parquet.

Rows travel as Arrow, through the reader's Flight port (or ReadRange's Arrow IPC messages with
``--grpc``), so types are exact; JSON lines are written from them, with nested fields (marked in
the Arrow schema) back as objects and bytes as base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from google.protobuf import json_format
from tqdm import tqdm

from fusou.api.reader.answers import JSON_FIELD_METADATA
from fusou.api.reader.client import arrow_of, read_range_callable, stats_of
from fusou.api.reader.v1 import reader_pb2
from fusou.api.timestamps import timestamp_of_ms
from fusou.cli.connection import Connection
from fusou.cli.flight_errors import FlightCallFailed, FlightUnreachable
from fusou.cli.input_error import InputError


def parse_time(text: str) -> int:
    """Epoch milliseconds from an integer or an RFC 3339 timestamp (UTC when no offset)."""
    value = text.strip()
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{text!r} is neither epoch milliseconds nor an RFC 3339 timestamp"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def _json_lines(table: pa.Table, out: IO[bytes]) -> None:
    json_fields = {
        f.name for f in table.schema if f.metadata and f.metadata.get(JSON_FIELD_METADATA)
    }
    for row in table.to_pylist():
        for name, value in row.items():
            if value is None:
                continue
            if name in json_fields:
                row[name] = orjson.loads(value)
            elif isinstance(value, bytes):
                row[name] = base64.b64encode(value).decode()
        out.write(orjson.dumps(row) + b"\n")


# Rows gathered into one Parquet row group: Flight's batches are a block each, far smaller
# than a row group should be.
_ROW_GROUP_BYTES = 64 * 1024 * 1024


class _Output:
    """Where the rows go: JSON lines, or a Parquet file opened at the first part."""

    def __init__(self, output_format: str, sink: IO[bytes]) -> None:
        self._format = output_format
        self._sink = sink
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0

    def write(self, part: pa.Table) -> None:
        if self._format != "parquet":
            _json_lines(part, self._sink)
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._sink, part.schema, compression="zstd")
        self._pending.append(part)
        self._pending_bytes += part.nbytes
        if self._pending_bytes >= _ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._writer is not None and self._pending:
            group = pa.concat_tables(self._pending)
            self._writer.write_table(group, row_group_size=max(1, group.num_rows))
        self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()


def _through_flight(
    conn: Connection, request: reader_pb2.ReadRangeRequest, timeout: float
) -> Iterator[tuple[pa.Table | None, reader_pb2.ReadStats | None]]:
    from pyarrow import flight

    from fusou.api.reader.flight import read_flight

    try:
        for batch, stats in read_flight(
            conn.flight_client(), request, conn.flight_options(timeout)
        ):
            yield pa.Table.from_batches([batch]), stats
    except flight.FlightUnavailableError as exc:
        if exc.extra_info:  # the server's own answer (a dependency down), not the port's
            raise FlightCallFailed(exc) from None
        raise FlightUnreachable(conn.flight_address, exc) from None
    except (flight.FlightError, pa.ArrowException) as exc:
        raise FlightCallFailed(exc) from None


def _through_grpc(
    conn: Connection, request: reader_pb2.ReadRangeRequest, timeout: float
) -> Iterator[tuple[pa.Table | None, reader_pb2.ReadStats | None]]:
    with conn.channel(options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]) as channel:
        for message in read_range_callable(channel)(
            request, timeout=timeout, metadata=conn.metadata
        ):
            yield arrow_of(message), stats_of(message)


def run_read(
    conn: Connection,
    dataset: str,
    table: str,
    *,
    start: int,
    end: int,
    columns: list[str],
    limit: int,
    output_format: str,
    output: Path | None,
    filters: Sequence[reader_pb2.Filter] = (),
    quiet: bool,
    timeout: float,
    via_grpc: bool = False,
) -> dict[str, Any]:
    """Reads through the reader's Arrow Flight port, or through ReadRange (``via_grpc``)."""
    if output_format == "parquet" and output is None:
        raise InputError("--format parquet needs -o FILE")
    request = reader_pb2.ReadRangeRequest(
        dataset_id=dataset,
        table=table,
        start_time=timestamp_of_ms(start),
        end_time=timestamp_of_ms(end),
        columns=columns,
        limit=limit,
        format=reader_pb2.OUTPUT_FORMAT_ARROW_IPC,
        filters=filters,
    )
    stats: dict[str, Any] = {}
    sink: IO[bytes] = sys.stdout.buffer if output is None else output.open("wb")
    out = _Output(output_format, sink)
    parts = (_through_grpc if via_grpc else _through_flight)(conn, request, timeout)
    try:
        with tqdm(unit="rows", disable=quiet, file=sys.stderr) as progress:
            for part, found in parts:
                if part is not None and (part.num_rows or output_format == "parquet"):
                    out.write(part)
                    progress.update(part.num_rows)
                if found is not None:
                    stats = json_format.MessageToDict(found, preserving_proto_field_name=True)
    finally:
        out.close()
        if output is not None:
            sink.close()
        else:
            sink.flush()
    return stats
