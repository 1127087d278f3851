"""Avro binary encoding of whole columns at once (schemaless datums, one per row).

The buffer stores each record as its Avro datum under the row's schema version, which lets the
archiver build Avro blocks by concatenating bytes. Encoding column by column with numpy is what
lets ingest keep up with PostgreSQL's COPY rate.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fusou.records.columns import (
    binary_lengths,
    bool_values,
    column_arrays,
    float64_values,
    int64_values,
    validity,
)
from fusou.records.segments import (
    Joined,
    Piece,
    as_binary,
    fixed,
    join_rows,
    masked,
    varints,
    zigzag,
)
from fusou.schema.model import FieldType, TableSchema

# Union branch indexes of ["null", T], zigzag-encoded: 0 -> 0x00, 1 -> 0x02.
_NULL_BRANCH = np.uint8(0)
_VALUE_BRANCH = np.uint8(2)
_VALUE_BRANCH_BYTE = b"\x02"
_NULL_BRANCH_BYTE = b"\x00"


def encode_datums(table: pa.Table | pa.RecordBatch, schema: TableSchema) -> Joined:
    """Encode ``table`` (columns conformed to ``schema``) as Avro datums."""
    n = table.num_rows
    arrays = column_arrays(table)
    parts: list[Piece] = []
    for f in schema.fields:
        arr = arrays[f.name]
        if f.name == schema.time_field:
            parts.append(varints(zigzag(int64_values(arr))))
            continue
        if f.type is FieldType.NULL:
            parts.append(_NULL_BRANCH_BYTE)  # always null: the union's null branch
            continue
        valid = validity(arr)
        if valid is None:
            parts.append(_VALUE_BRANCH_BYTE)
            parts.extend(_value_pieces(arr, f.type))
            continue
        branch = np.where(valid, _VALUE_BRANCH, _NULL_BRANCH).astype(np.uint8)
        parts.append(fixed(branch.reshape(n, 1)))
        parts.extend(masked(p, valid) for p in _value_pieces(arr, f.type))
    return join_rows(parts, n)


def _value_pieces(arr: pa.Array, ftype: FieldType) -> list[Piece]:
    if ftype is FieldType.LONG:
        return [varints(zigzag(int64_values(arr)))]
    if ftype is FieldType.DOUBLE:
        values = np.ascontiguousarray(float64_values(arr).astype("<f8"))
        return [fixed(values.view(np.uint8).reshape(-1, 8))]
    if ftype is FieldType.BOOLEAN:
        return [fixed(bool_values(arr).reshape(-1, 1))]
    return [varints(zigzag(binary_lengths(arr))), as_binary(arr)]
