"""``fusou ingest DATASET TABLE FILE``: send a JSON-lines or Parquet file in batches.

Request ids are derived from the file's content and the batch number, so running the same
command again after a failure re-sends only what is missing: batches already applied are
answered from the server's record and written once.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from google.protobuf import struct_pb2
from tqdm import tqdm

from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.cli.connection import Connection
from fusou.cli.input_error import InputError
from fusou.records.wire_formats import arrow_ipc_bytes


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:24]


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"PAR1"


def _json_objects(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise InputError(f"{path}:{lineno}: a row must be a JSON object")
            yield value


def check_json_lines(path: Path) -> int:
    """Read the whole file once before sending anything, so a bad line in the middle does
    not leave half the file ingested; returns the number of rows."""
    return sum(1 for _ in _json_objects(path))


def _json_batches(path: Path, batch_size: int) -> Iterator[list[struct_pb2.Struct]]:
    batch: list[struct_pb2.Struct] = []
    for value in _json_objects(path):
        row = struct_pb2.Struct()
        row.update(value)
        batch.append(row)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_ingest(
    conn: Connection, dataset: str, table: str, path: Path, *, batch_size: int, quiet: bool
) -> dict[str, int]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    digest = _file_digest(path)
    parquet = _is_parquet(path)
    total_rows = pq.ParquetFile(path).metadata.num_rows if parquet else check_json_lines(path)
    rows_sent = rows_written = replayed = batches = 0
    with conn.channel(options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        progress = tqdm(total=total_rows, unit="rows", disable=quiet, file=sys.stderr)
        requests: Iterator[tuple[int, ingest_pb2.IngestRequest]]
        if parquet:
            requests = (
                (b.num_rows, ingest_pb2.IngestRequest(arrow_ipc=arrow_ipc_bytes(b)))
                for b in pq.ParquetFile(path).iter_batches(batch_size=batch_size)
            )
        else:
            requests = (
                (len(rows), ingest_pb2.IngestRequest(rows=rows))
                for rows in _json_batches(path, batch_size)
            )
        with progress:
            for count, request in requests:
                request.dataset_id = dataset
                request.table = table
                request.request_id = f"{digest}-{batch_size}-{batches}"
                response = stub.Ingest(request, timeout=120, metadata=conn.metadata)
                batches += 1
                rows_sent += count
                rows_written += response.rows_written
                replayed += int(response.replayed)
                progress.update(count)
    return {
        "batches": batches,
        "rows": rows_sent,
        "rows_written": rows_written,
        "batches_replayed": replayed,
    }
