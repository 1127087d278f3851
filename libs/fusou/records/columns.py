"""Arrow column access as numpy arrays, for the vectorized encoders."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fusou.records.segments import I64, U8


def validity(arr: pa.Array) -> npt.NDArray[np.bool_]:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=np.bool_)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def int64_values(arr: pa.Array) -> npt.NDArray[np.int64]:
    return np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def float64_values(arr: pa.Array) -> npt.NDArray[np.float64]:
    return np.asarray(arr.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)


def bool_values(arr: pa.Array) -> U8:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)


def binary_layout(arr: pa.Array) -> tuple[U8, I64, I64]:
    """(data buffer, start offsets, lengths) of a string or binary array with int32 offsets."""
    n = len(arr)
    buffers = arr.buffers()
    raw = np.frombuffer(buffers[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    offsets: I64 = raw.astype(np.int64)
    data = buffers[2]
    data_np = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths: I64 = np.diff(offsets)
    return data_np, offsets[:-1], lengths
