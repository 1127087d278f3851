"""The one dedup rule's key: a hash of the key fields, or of the whole record.

The key must not change when a row moves between storage forms or schema versions, so the
canonical form ignores null fields (added fields are null in older rows), orders fields by name
(versions may order them differently), and writes whole-number doubles as integers (a long
field widened to double keeps its keys).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fusou.records.columns import (
    binary_layout,
    bool_values,
    float64_values,
    int64_values,
    validity,
)
from fusou.records.segments import Pieces, join_rows
from fusou.schema.model import FieldType

KEY_BYTES = 16
_INT64_LIMIT = 2.0**63
_CANONICAL_NAN = np.array([np.nan], dtype="<f8").view(np.uint8)


def _le_u32(values: npt.NDArray[np.int64]) -> Pieces:
    return Pieces.fixed(np.ascontiguousarray(values.astype("<u4")).view(np.uint8).reshape(-1, 4))


def _tag(tag: bytes, n: int) -> Pieces:
    return Pieces.constant(tag, n)


def _canonical_pieces(arr: pa.Array, ftype: FieldType) -> list[Pieces]:
    n = len(arr)
    if ftype is FieldType.LONG:
        ints = np.ascontiguousarray(int64_values(arr).astype("<i8"))
        return [_tag(b"n", n), Pieces.fixed(ints.view(np.uint8).reshape(-1, 8))]
    if ftype is FieldType.DOUBLE:
        values = float64_values(arr)
        with np.errstate(invalid="ignore"):
            whole = (
                np.isfinite(values)
                & (np.floor(values) == values)
                & (values >= -_INT64_LIMIT)
                & (values < _INT64_LIMIT)
            )
        as_int = np.ascontiguousarray(np.where(whole, values, 0).astype("<i8")).view(np.uint8)
        as_float = np.ascontiguousarray(values.astype("<f8")).view(np.uint8).reshape(-1, 8)
        as_float = np.where(np.isnan(values)[:, None], _CANONICAL_NAN[None, :], as_float)
        body = np.where(whole[:, None], as_int.reshape(-1, 8), as_float).astype(np.uint8)
        tags = np.where(whole, ord("n"), ord("f")).astype(np.uint8)
        return [Pieces.packed(tags, np.ones(n, dtype=np.int64)), Pieces.fixed(body)]
    if ftype is FieldType.BOOLEAN:
        return [_tag(b"b", n), Pieces.fixed(bool_values(arr).reshape(-1, 1))]
    if ftype in (FieldType.STRING, FieldType.JSON, FieldType.BYTES):
        data, starts, lengths = binary_layout(arr)
        tag = b"y" if ftype is FieldType.BYTES else b"s"
        return [_tag(tag, n), _le_u32(lengths), Pieces(data, starts, lengths)]
    return []


def dedup_keys(
    table: pa.Table,
    types: dict[str, FieldType],
    key_fields: Sequence[str] = (),
) -> npt.NDArray[np.uint8]:
    """An ``n x 16`` array of keys for the rows of ``table`` (any column order, any version)."""
    n = table.num_rows
    names = sorted(key_fields) if key_fields else sorted(table.column_names)
    parts: list[Pieces] = []
    for name in names:
        if name not in types or name not in table.column_names:
            continue  # an absent key field is null in every row
        ftype = types[name]
        if ftype is FieldType.NULL:
            continue
        arr = table.column(name).combine_chunks()
        valid = validity(arr)
        encoded_name = len(name).to_bytes(4, "little") + name.encode()
        parts.append(Pieces.constant(encoded_name, n).masked(valid))
        parts.extend(p.masked(valid) for p in _canonical_pieces(arr, ftype))
    joined = join_rows(parts, n)
    view = memoryview(joined.data.tobytes())
    offsets = joined.offsets.tolist()
    blake2b = hashlib.blake2b
    digest = b"".join(
        [blake2b(view[a:b], digest_size=KEY_BYTES).digest() for a, b in itertools.pairwise(offsets)]
    )
    return np.frombuffer(digest, dtype=np.uint8).reshape(n, KEY_BYTES)
