"""The one dedup rule's key: a hash of the key fields, or of the whole record.

The key is XXH3-128 of a canonical form of the record. The key must not change when a row moves between storage forms or schema versions, so the
canonical form ignores null fields (added fields are null in older rows), orders fields by name
(versions may order them differently), and writes whole-number doubles as integers (a long
field widened to double keeps its keys).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import xxhash

from fusou.records.columns import (
    binary_lengths,
    bool_values,
    column_arrays,
    float64_values,
    int64_values,
    validity,
)
from fusou.records.segments import Piece, as_binary, fixed, join_rows, masked
from fusou.schema.model import FieldType

KEY_BYTES = 16
_INT64_LIMIT = 2.0**63
_CANONICAL_NAN = np.array([np.nan], dtype="<f8").view(np.uint8)


def _le_u32(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    return fixed(np.ascontiguousarray(values.astype("<u4")).view(np.uint8).reshape(-1, 4))


def _canonical_pieces(arr: pa.Array, ftype: FieldType) -> list[Piece]:
    """Tag and value bytes of each row; the caller masks out nulls."""
    if ftype is FieldType.LONG:
        ints = np.ascontiguousarray(int64_values(arr).astype("<i8"))
        return [b"n", fixed(ints.view(np.uint8).reshape(-1, 8))]
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
        return [fixed(tags.reshape(-1, 1)), fixed(body)]
    if ftype is FieldType.BOOLEAN:
        return [b"b", fixed(bool_values(arr).reshape(-1, 1))]
    if ftype in (FieldType.STRING, FieldType.JSON, FieldType.BYTES):
        tag = b"y" if ftype is FieldType.BYTES else b"s"
        return [tag, _le_u32(binary_lengths(arr)), as_binary(arr)]
    return []


def dedup_keys(
    table: pa.Table | pa.RecordBatch,
    types: dict[str, FieldType],
    key_fields: Sequence[str] = (),
) -> npt.NDArray[np.uint8]:
    """An ``n x 16`` array of keys for the rows of ``table`` (any column order, any version)."""
    n = table.num_rows
    arrays = column_arrays(table)
    names = sorted(key_fields) if key_fields else sorted(arrays)
    parts: list[Piece] = []
    for name in names:
        if name not in types or name not in arrays:
            continue  # an absent key field is null in every row
        ftype = types[name]
        if ftype is FieldType.NULL:
            continue
        arr = arrays[name]
        valid = validity(arr)
        encoded_name = len(name).to_bytes(4, "little") + name.encode()
        if valid is None:
            parts.append(encoded_name)
            parts.extend(_canonical_pieces(arr, ftype))
        else:
            parts.append(masked(encoded_name, valid))
            parts.extend(masked(p, valid) for p in _canonical_pieces(arr, ftype))
    joined = join_rows(parts, n)
    data = joined.data.tobytes()
    offsets = joined.offsets.tolist()
    # XXH3-128 is a fixed, specified algorithm, so keys stay comparable across releases; it is
    # several times faster per row than a cryptographic hash, and keys only ever meet keys of
    # the same table.
    digest128 = xxhash.xxh3_128_digest
    digest = b"".join([digest128(data[a:b]) for a, b in itertools.pairwise(offsets)])
    return np.frombuffer(digest, dtype=np.uint8).reshape(n, KEY_BYTES)
