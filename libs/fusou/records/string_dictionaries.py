"""Dictionary-encoded string columns, as the compactor carries them from Parquet inputs to
Parquet outputs without materializing every value.

Everywhere else a string column is a plain ``pa.string()``; these helpers turn one form into the
other and size a table as if it were plain, since that is what readers will hold.
"""

from __future__ import annotations

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


def string_dictionary(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` (plain or dictionary strings) with one dictionary shared by all its chunks."""
    if column.type != STRING_DICTIONARY:
        column = pc.dictionary_encode(column)
    if column.num_chunks > 1:
        column = pa.table({"c": column}).unify_dictionaries().column(0)
    return column


def plain_nbytes(table: pa.Table) -> int:
    """About ``table.nbytes`` as if its dictionary columns were plain strings: their rows are
    counted at their dictionary's mean value length (counting each value costs more than the
    rest of preparing a row group for writing)."""
    total = 0
    for column in table.columns:
        if column.type != STRING_DICTIONARY:
            total += column.nbytes
            continue
        for chunk in column.chunks:
            d = chunk.dictionary
            mean = max(0, d.nbytes - 4 * (len(d) + 1)) / max(1, len(d))
            # 4 bytes of offset a row, the values, a validity bitmap when there are nulls.
            total += int(len(chunk) * (4 + mean)) + 4
            if chunk.null_count:
                total += (len(chunk) + 7) // 8
    return total
