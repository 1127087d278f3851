"""Avro binary encoding of whole columns at once (schemaless datums, one per row).

The buffer stores each record as its Avro datum under the row's schema version, which lets the
archiver build Avro blocks by concatenating bytes. Encoding column by column with numpy is what
lets ingest keep up with PostgreSQL's COPY rate.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fusou.records.columns import (
    binary_layout,
    bool_values,
    float64_values,
    int64_values,
    validity,
)
from fusou.records.segments import Joined, Pieces, join_rows, varints, zigzag
from fusou.schema.model import FieldType, TableSchema

# Union branch indexes of ["null", T], zigzag-encoded: 0 -> 0x00, 1 -> 0x02.
_NULL_BRANCH = np.uint8(0)
_VALUE_BRANCH = np.uint8(2)


def encode_datums(table: pa.Table, schema: TableSchema) -> Joined:
    """Encode ``table`` (columns conformed to ``schema``, in its order) as Avro datums."""
    n = table.num_rows
    parts: list[Pieces] = []
    for f in schema.fields:
        arr = table.column(f.name).combine_chunks()
        if f.name == schema.time_field:
            parts.append(varints(zigzag(int64_values(arr))))
            continue
        if f.type is FieldType.NULL:
            continue  # the Avro null type takes no bytes
        valid = validity(arr)
        branch = np.where(valid, _VALUE_BRANCH, _NULL_BRANCH).astype(np.uint8)
        parts.append(Pieces.packed(branch, np.ones(n, dtype=np.int64)))
        parts.extend(p.masked(valid) for p in _value_pieces(arr, f.type))
    return join_rows(parts, n)


def _value_pieces(arr: pa.Array, ftype: FieldType) -> list[Pieces]:
    if ftype is FieldType.LONG:
        return [varints(zigzag(int64_values(arr)))]
    if ftype is FieldType.DOUBLE:
        values = np.ascontiguousarray(float64_values(arr).astype("<f8"))
        return [Pieces.fixed(values.view(np.uint8).reshape(-1, 8))]
    if ftype is FieldType.BOOLEAN:
        return [Pieces.fixed(bool_values(arr).reshape(-1, 1))]
    data, starts, lengths = binary_layout(arr)
    return [varints(zigzag(lengths)), Pieces(data, starts, lengths)]
