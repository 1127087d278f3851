"""``fusou read DATASET TABLE --from T1 --to T2``: a time range as JSON lines or Parquet.

Rows travel as Arrow IPC (exact types); JSON lines are written from them, with nested fields
(marked in the Arrow schema) back as objects and bytes as base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import sys
from collections.abc import Sequence
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
) -> dict[str, Any]:
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
    writer: pq.ParquetWriter | None = None
    try:
        with (
            conn.channel(
                options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
            ) as channel,
            tqdm(unit="rows", disable=quiet, file=sys.stderr) as progress,
        ):
            for message in read_range_callable(channel)(
                request, timeout=timeout, metadata=conn.metadata
            ):
                part = arrow_of(message)
                if part is not None:
                    if output_format == "parquet":
                        if writer is None:
                            writer = pq.ParquetWriter(sink, part.schema, compression="zstd")
                        writer.write_table(part)
                    else:
                        _json_lines(part, sink)
                    progress.update(part.num_rows)
                last = stats_of(message)
                if last is not None:
                    stats = json_format.MessageToDict(last, preserving_proto_field_name=True)
    finally:
        if writer is not None:
            writer.close()
        if output is not None:
            sink.close()
        else:
            sink.flush()
    return stats
