"""Read results as the wire carries them: protobuf Structs (what grpcurl shows) or Arrow IPC."""

from __future__ import annotations

import base64

import orjson
import pyarrow as pa
from google.protobuf import struct_pb2

from fusou.schema.model import FieldType, TableSchema


def to_structs(batch: pa.Table | pa.RecordBatch, schema: TableSchema) -> list[struct_pb2.Struct]:
    """Rows as Structs. Nested fields come back as the objects they were sent as; bytes as
    base64 text (Struct has no bytes); numbers as JSON numbers (doubles)."""
    json_fields = [f.name for f in schema.fields if f.type is FieldType.JSON]
    bytes_fields = [f.name for f in schema.fields if f.type is FieldType.BYTES]
    out: list[struct_pb2.Struct] = []
    for row in batch.to_pylist():
        for name in json_fields:
            value = row.get(name)
            if value is not None:
                row[name] = orjson.loads(value)
        for name in bytes_fields:
            value = row.get(name)
            if value is not None:
                row[name] = base64.b64encode(value).decode()
        s = struct_pb2.Struct()
        s.update(row)  # numbers become doubles: Struct has no integers
        out.append(s)
    return out
