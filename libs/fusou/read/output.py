"""Read results as the wire carries them: protobuf Structs (what grpcurl shows) or Arrow IPC."""

from __future__ import annotations

import base64

import orjson
import pyarrow as pa
from google.protobuf import struct_pb2

from fusou.schema.model import FieldType, TableSchema

# Arrow field metadata marking a column that holds JSON text (a nested object or list).
JSON_FIELD_METADATA = b"fusou.json"


def mark_json_fields(table: pa.Table, schema: TableSchema) -> pa.Table:
    """Label JSON columns in the Arrow schema so clients can turn them back into objects."""
    json_fields = {f.name for f in schema.fields if f.type is FieldType.JSON}
    if not json_fields:
        return table
    fields = [
        f.with_metadata({JSON_FIELD_METADATA: b"true"}) if f.name in json_fields else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


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
