"""Arrow IPC streams as clients send rows to Ingest (Structs are built in the API layer)."""

from __future__ import annotations

import pyarrow as pa


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
