"""Vectorized byte assembly: build many small variable-length byte strings with numpy.

A *piece* is one byte string per row, given as start offsets and lengths into a buffer. Rows
of output are the concatenation of several pieces, row by row. This is how Avro datums, dedup
canonical forms and PostgreSQL binary COPY rows are built without a Python loop per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Pieces:
    buffer: U8
    starts: I64
    lengths: I64

    @classmethod
    def packed(cls, buffer: U8, lengths: I64) -> Pieces:
        """Pieces stored back to back in row order."""
        starts = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        return cls(buffer, starts, lengths.astype(np.int64, copy=False))

    @classmethod
    def fixed(cls, matrix: U8) -> Pieces:
        """One row of ``matrix`` (n x width) per piece."""
        n, width = matrix.shape
        return cls(
            np.ascontiguousarray(matrix).reshape(-1),
            np.arange(n, dtype=np.int64) * width,
            np.full(n, width, dtype=np.int64),
        )

    @classmethod
    def constant(cls, value: bytes, n: int) -> Pieces:
        buf = np.frombuffer(value, dtype=np.uint8)
        return cls(buf, np.zeros(n, dtype=np.int64), np.full(n, len(value), dtype=np.int64))

    def masked(self, keep: npt.NDArray[np.bool_]) -> Pieces:
        """Zero-length pieces where ``keep`` is false."""
        return Pieces(self.buffer, self.starts, np.where(keep, self.lengths, 0))


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


def join_rows(parts: Sequence[Pieces], n: int) -> Joined:
    """Concatenate, for each row i, piece i of every part in order."""
    if not parts:
        return Joined(np.zeros(0, dtype=np.uint8), np.zeros(n + 1, dtype=np.int64))
    bases = np.cumsum([0] + [len(p.buffer) for p in parts[:-1]], dtype=np.int64)
    source = np.concatenate([p.buffer for p in parts]) if len(parts) > 1 else parts[0].buffer
    starts = np.stack([p.starts + b for p, b in zip(parts, bases, strict=True)], axis=1)
    lengths = np.stack([p.lengths for p in parts], axis=1)
    flat_len = lengths.reshape(-1)
    flat_start = starts.reshape(-1)
    total = int(flat_len.sum())
    out_start = np.cumsum(flat_len) - flat_len
    index = np.repeat(flat_start - out_start, flat_len) + np.arange(total, dtype=np.int64)
    data = source[index]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths.sum(axis=1), out=offsets[1:])
    return Joined(data, offsets)


def zigzag(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    v = values.astype(np.int64, copy=False)
    return ((v << np.int64(1)) ^ (v >> np.int64(63))).view(np.uint64)


def varints(values: npt.NDArray[np.uint64]) -> Pieces:
    """Unsigned LEB128 varints (Avro's encoding of zigzagged longs), one per value."""
    n = len(values)
    z = values.astype(np.uint64, copy=False)
    lengths = np.ones(n, dtype=np.int64)
    for k in range(1, 10):
        lengths += z >= np.uint64(1 << (7 * k))
    matrix = np.empty((n, 10), dtype=np.uint8)
    for k in range(10):
        group = ((z >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        more = (k < lengths - 1).astype(np.uint8) << np.uint8(7)
        matrix[:, k] = group | more
    keep = np.arange(10)[None, :] < lengths[:, None]
    return Pieces.packed(matrix[keep], lengths)


def big_endian(values: npt.NDArray[np.int64], dtype: str) -> U8:
    """n x width matrix of big-endian integers (PostgreSQL binary format)."""
    return np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(len(values), -1)
