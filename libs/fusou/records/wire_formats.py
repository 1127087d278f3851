"""Client-side encodings of rows for Ingest: Arrow IPC streams and protobuf Structs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
from google.protobuf import struct_pb2


def write_ipc_stream(sink: pa.NativeFile, data: pa.Table | pa.RecordBatch) -> None:
    """``data`` as one Arrow IPC stream (schema, batches, end marker) into ``sink``."""
    with pa.ipc.new_stream(sink, data.schema) as writer:
        if isinstance(data, pa.RecordBatch):
            writer.write_batch(data)
        else:
            writer.write_table(data)


def arrow_ipc_bytes(data: pa.Table | pa.RecordBatch) -> bytes:
    """One Arrow IPC stream holding ``data`` (what IngestRequest.arrow_ipc carries)."""
    sink = pa.BufferOutputStream()
    write_ipc_stream(sink, data)
    return bytes(sink.getvalue().to_pybytes())


def structs(rows: Iterable[Mapping[str, Any]]) -> list[struct_pb2.Struct]:
    """JSON-like dicts as protobuf Structs (what IngestRequest.rows carries)."""
    out = []
    for row in rows:
        s = struct_pb2.Struct()
        s.update(row)
        out.append(s)
    return out
