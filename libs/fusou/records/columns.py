"""Arrow column access as numpy arrays, for the vectorized encoders."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from fusou.records.segments import I64, U8


def holds_bytes(t: pa.DataType) -> bool:
    """Whether values of ``t`` are strings or bytes whose size is their length (the offset
    layouts, 32- or 64-bit)."""
    return bool(
        pa.types.is_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_string(t)
        or pa.types.is_large_binary(t)
    )


def validity(arr: pa.Array) -> npt.NDArray[np.bool_] | None:
    """Which values are present, or None when all are (the common, cheap case)."""
    if arr.null_count == 0:
        return None
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def column_arrays(data: pa.Table | pa.RecordBatch) -> dict[str, pa.Array]:
    """Each column as one contiguous array."""
    if isinstance(data, pa.Table):
        data = data.combine_chunks()
        return {
            name: (col.chunk(0) if col.num_chunks else pa.array([], col.type))
            for name, col in zip(data.column_names, data.columns, strict=True)
        }
    return dict(zip(data.schema.names, data.columns, strict=True))


def int64_values(arr: pa.Array) -> npt.NDArray[np.int64]:
    """Values with nulls as 0 (callers mask them out)."""
    filled = arr.fill_null(0) if arr.null_count else arr
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64)


def float64_values(arr: pa.Array) -> npt.NDArray[np.float64]:
    filled = arr.fill_null(0.0) if arr.null_count else arr
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def bool_values(arr: pa.Array) -> U8:
    filled = arr.fill_null(False) if arr.null_count else arr
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.uint8)


def binary_lengths(arr: pa.Array) -> I64:
    """Byte length of each value of a string or binary array (0 for nulls)."""
    lengths = pc.binary_length(arr)
    if lengths.null_count:
        lengths = lengths.fill_null(0)
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)
