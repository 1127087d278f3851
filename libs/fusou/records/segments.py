"""Vectorized byte assembly: build many small variable-length byte strings at once.

A *piece* holds one byte string per row, as an Arrow binary array (or a binary scalar, the
same bytes for every row). Output rows are the concatenation, row by row, of several pieces;
Arrow's ``binary_join_element_wise`` does that in C++. This is how Avro datums, dedup canonical
forms and PostgreSQL binary COPY rows are built without a Python loop per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
# A piece is one of: an ``n x width`` uint8 matrix (fixed width), ``bytes`` (the same for every
# row) or an Arrow binary array (variable width). Runs of fixed pieces are glued with numpy
# before the variable ones go through Arrow, which keeps the number of Arrow inputs small.
Piece: TypeAlias = npt.NDArray[np.uint8] | bytes | pa.Array


def _offsets(lengths: npt.NDArray[np.int64]) -> pa.Buffer:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.py_buffer(offsets)


def packed(buffer: U8, lengths: I64) -> pa.Array:
    """Pieces stored back to back in row order."""
    return pa.Array.from_buffers(
        pa.binary(), len(lengths), [None, _offsets(lengths), pa.py_buffer(buffer)]
    )


def fixed(matrix: U8) -> U8:
    """One row of ``matrix`` (n x width) per piece."""
    return np.ascontiguousarray(matrix, dtype=np.uint8)


def fixed_array(matrix: U8) -> pa.Array:
    """A fixed-width piece as an Arrow binary array."""
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix).reshape(-1)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def repeated(value: bytes, n: int) -> U8:
    row = np.frombuffer(value, dtype=np.uint8)
    return np.broadcast_to(row, (n, len(row)))


def as_binary(arr: pa.Array) -> pa.Array:
    """A string or binary array's bytes, nulls as empty pieces."""
    if arr.type != pa.binary():
        arr = arr.view(pa.binary()) if arr.type == pa.string() else pc.cast(arr, pa.binary())
    return arr


def masked(piece: Piece, keep: npt.NDArray[np.bool_]) -> Piece:
    """Empty pieces where ``keep`` is false."""
    if keep.all():
        return piece
    if isinstance(piece, bytes):
        piece = repeated(piece, len(keep))
    if isinstance(piece, np.ndarray):
        piece = fixed_array(piece)
    validity = pa.array(keep, pa.bool_()).buffers()[1]
    if piece.offset != 0 or piece.null_count:
        piece = pc.if_else(pa.array(keep), piece, pa.scalar(b"", pa.binary()))
        return piece
    return pa.Array.from_buffers(
        pa.binary(), len(piece), [validity, piece.buffers()[1], piece.buffers()[2]]
    )


@dataclass(frozen=True)
class Joined:
    """Rows assembled from pieces: ``data[offsets[i]:offsets[i+1]]`` is row i."""

    data: U8
    offsets: I64

    def row(self, i: int) -> bytes:
        return self.data[self.offsets[i] : self.offsets[i + 1]].tobytes()

    @property
    def lengths(self) -> I64:
        return np.diff(self.offsets)

    @classmethod
    def from_arrow(cls, arr: pa.Array) -> Joined:
        n = len(arr)
        buffers = arr.buffers()
        raw = np.frombuffer(buffers[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
        offsets: I64 = raw.astype(np.int64)
        data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else None
        if data is None:
            data = np.zeros(0, dtype=np.uint8)
        if offsets[0] != 0:
            data = data[offsets[0] :]
            offsets = offsets - offsets[0]
        return cls(data, offsets)

    def as_arrow(self) -> pa.Array:
        return packed(self.data, self.lengths)


def _coalesce(parts: Sequence[Piece], n: int) -> list[bytes | pa.Array]:
    out: list[bytes | pa.Array] = []
    run: list[U8 | bytes] = []

    def flush() -> None:
        if not run:
            return
        if all(isinstance(p, bytes) for p in run):
            out.append(b"".join(p for p in run if isinstance(p, bytes)))
        else:
            matrices = [repeated(p, n) if isinstance(p, bytes) else p for p in run]
            out.append(fixed_array(np.concatenate(matrices, axis=1)))
        run.clear()

    for p in parts:
        if isinstance(p, (bytes, np.ndarray)):
            run.append(p)
        else:
            flush()
            out.append(p)
    flush()
    return out


def join_rows(parts: Sequence[Piece], n: int) -> Joined:
    """Concatenate, for each row i, piece i of every part in order."""
    glued = _coalesce(parts, n)
    if not glued:
        return Joined(np.zeros(0, dtype=np.uint8), np.zeros(n + 1, dtype=np.int64))
    if len(glued) == 1:
        only = glued[0]
        if isinstance(only, bytes):
            return Joined.from_arrow(fixed_array(repeated(only, n)))
        return Joined.from_arrow(only.fill_null(b"") if only.null_count else only)
    inputs = [pa.scalar(p, pa.binary()) if isinstance(p, bytes) else p for p in glued]
    joined = pc.binary_join_element_wise(
        *inputs, pa.scalar(b"", pa.binary()), null_handling="replace", null_replacement=b""
    )
    return Joined.from_arrow(joined)


def zigzag(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    v = values.astype(np.int64, copy=False)
    return ((v << np.int64(1)) ^ (v >> np.int64(63))).view(np.uint64)


def varints(values: npt.NDArray[np.uint64]) -> U8 | pa.Array:
    """Unsigned LEB128 varints (Avro's encoding of zigzagged longs), one per value."""
    n = len(values)
    z = values.astype(np.uint64, copy=False)
    lengths = np.ones(n, dtype=np.int64)
    width = 1
    if n:
        top = int(z.max())
        while width < 10 and top >= 1 << (7 * width):
            width += 1
    for k in range(1, width):
        lengths += z >= np.uint64(1 << (7 * k))
    if width == 1:
        return z.astype(np.uint8).reshape(n, 1)
    matrix = np.empty((n, width), dtype=np.uint8)
    for k in range(width):
        group = ((z >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        more = (lengths > k + 1).astype(np.uint8) << np.uint8(7)
        matrix[:, k] = group | more
    keep = np.arange(width)[None, :] < lengths[:, None]
    return packed(matrix[keep], lengths)
