"""Dictionary-encoded string columns, as the compactor carries them from Parquet inputs to
Parquet outputs without materializing every value.

Everywhere else a string column is a plain ``pa.string()``; these helpers turn one form into the
other, and size a column as if it were plain, since that is what readers will hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# What pyarrow's Parquet reader gives for a string column read as a dictionary.
STRING_DICTIONARY = pa.dictionary(pa.int32(), pa.string())


def is_string_like(t: pa.DataType) -> bool:
    """A plain string or a dictionary of strings: the same values either way."""
    return bool(t == pa.string() or t == STRING_DICTIONARY)


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with every dictionary-encoded column plain (the same table if it has none)."""
    if not any(pa.types.is_dictionary(f.type) for f in table.schema):
        return table
    return table.cast(
        pa.schema(
            [
                f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                for f in table.schema
            ]
        )
    )


def plain_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(pa.string()) if column.type != pa.string() else column


@dataclass(frozen=True)
class SharedDictionary:
    column: pa.ChunkedArray  # chunks sharing one dictionary of just the values they hold
    plain_bytes: int  # what the column takes as plain strings


def shared_dictionary(column: pa.ChunkedArray) -> SharedDictionary:
    """``column`` (plain or dictionary strings) with one dictionary shared by all its chunks and
    holding only the values they use: a slice of a Parquet input keeps the input's whole
    dictionary, which a writer would otherwise store again for every row group."""
    if column.type != STRING_DICTIONARY:
        column = pc.dictionary_encode(column)
    if column.num_chunks > 1:
        column = pa.table({"c": column}).unify_dictionaries().column(0)
    if not column.num_chunks:
        return SharedDictionary(column, 0)
    dictionary = column.chunk(0).dictionary
    used_indices = [pc.drop_null(c.indices).to_numpy() for c in column.chunks]
    counts = np.bincount(np.concatenate(used_indices), minlength=len(dictionary))
    lengths = pc.binary_length(dictionary).fill_null(0).to_numpy(zero_copy_only=False)
    rows = len(column)
    # 4 bytes of offset a row, the values, a validity bitmap when there are nulls.
    plain = 4 * (rows + 1) + int(np.dot(counts, lengths))
    if column.null_count:
        plain += (rows + 7) // 8
    used = np.flatnonzero(counts)
    if len(used) < len(dictionary):
        renumber = np.zeros(len(dictionary), np.int32)
        renumber[used] = np.arange(len(used), dtype=np.int32)
        smaller = dictionary.take(pa.array(used))
        column = pa.chunked_array(
            [
                pa.DictionaryArray.from_arrays(pc.take(pa.array(renumber), c.indices), smaller)
                for c in column.chunks
            ],
            STRING_DICTIONARY,
        )
    return SharedDictionary(column, plain)
