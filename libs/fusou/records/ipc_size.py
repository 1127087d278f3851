"""What an Arrow IPC stream takes once decoded, read from its message headers alone.

A compressed stream (LZ4 or ZSTD buffers) may inflate a few kilobytes into gigabytes: pyarrow
allocates each buffer at the size the stream declares before anything could check a row. The
declared sizes are in the open: each record batch's header (a flatbuffer) lists its buffers, and
each compressed buffer starts with its decompressed length (-1: stored as is). Summing them
costs a few operations per buffer, with nothing decompressed.
"""

from __future__ import annotations

import struct

import pyarrow as pa
import pyarrow.compute as pc

from fusou.errors import InvalidArgument
from fusou.records.columns import holds_bytes

# Field numbers of the flatbuffer tables read here (Arrow's Message.fbs).
_MESSAGE_HEADER = 2  # Message.header (the union's value; its type is field 1)
_DICTIONARY_DATA = 1  # DictionaryBatch.data, a RecordBatch
_BATCH_BUFFERS = 2  # RecordBatch.buffers: [Buffer{offset: long, length: long}]
_BATCH_COMPRESSION = 3  # RecordBatch.compression, present when the buffers are compressed
_UNCOMPRESSED = -1


class _Flatbuffer:
    """The few reads of a flatbuffer that the headers need; bounds are checked by slicing."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def _u16(self, pos: int) -> int:
        return int(struct.unpack_from("<H", self._data, pos)[0])

    def _u32(self, pos: int) -> int:
        return int(struct.unpack_from("<I", self._data, pos)[0])

    def root(self) -> int:
        return self._u32(0)

    def field(self, table: int, number: int) -> int | None:
        """The position of a table's field, or None when it is absent."""
        vtable = table - int(struct.unpack_from("<i", self._data, table)[0])
        entry = 4 + 2 * number
        if entry + 2 > self._u16(vtable):
            return None
        offset = self._u16(vtable + entry)
        return table + offset if offset else None

    def table_at(self, field: int) -> int:
        return field + self._u32(field)

    def buffers(self, batch: int) -> list[tuple[int, int]]:
        field = self.field(batch, _BATCH_BUFFERS)
        if field is None:
            return []
        vector = self.table_at(field)
        count = self._u32(vector)
        return [struct.unpack_from("<qq", self._data, vector + 4 + 16 * i) for i in range(count)]


def _batch_bytes(header: _Flatbuffer, batch: int, body: pa.Buffer | None) -> int:
    buffers = header.buffers(batch)
    if header.field(batch, _BATCH_COMPRESSION) is None:
        return sum(length for _, length in buffers)
    raw = memoryview(body) if body is not None else memoryview(b"")
    total = 0
    for offset, length in buffers:
        if length == 0:
            continue
        if offset < 0 or length < 8 or offset + 8 > len(raw):
            raise ValueError("a compressed buffer lies outside the message body")
        (declared,) = struct.unpack_from("<q", raw, offset)
        if declared == _UNCOMPRESSED:
            total += length - 8
        elif declared < 0:
            raise ValueError("a compressed buffer declares a negative length")
        else:
            total += declared
    return total


def decoded_bytes(data: bytes | pa.Buffer, label: str) -> int:
    """The bytes an Arrow IPC stream's batches (and dictionaries) take once decoded."""
    total = 0
    try:
        reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(data))
        while True:
            try:
                message = reader.read_next_message()
            except StopIteration:
                break
            if message.type not in ("record batch", "dictionary batch"):
                continue
            header = _Flatbuffer(message.metadata.to_pybytes())
            field = header.field(header.root(), _MESSAGE_HEADER)
            if field is None:
                continue
            batch = header.table_at(field)
            if message.type == "dictionary batch":
                data_field = header.field(batch, _DICTIONARY_DATA)
                if data_field is None:
                    continue
                batch = header.table_at(data_field)
            total += _batch_bytes(header, batch, message.body)
    except (pa.ArrowException, OSError, ValueError, struct.error) as exc:
        raise InvalidArgument(label, f"not a readable Arrow IPC stream: {exc}") from None
    return total


def expanded_bytes(table: pa.Table) -> int:
    """The bytes ``table``'s columns take once their dictionaries are decoded, as ingest
    decodes them (at the top, or inside objects and lists, which become JSON): a dictionary
    sent once stands for a copy of its value in every row pointing at it, which the stream's
    own sizes (``decoded_bytes``) do not show. Costs one integer per row of a dictionary;
    nothing else is materialized, and columns without dictionaries cost nothing."""
    total = 0
    for column in table.columns:
        if not _has_dictionary(column.type):
            total += column.nbytes
            continue
        for chunk in column.chunks:
            total += _expanded(chunk)
    return total


def _has_dictionary(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return True
    return any(_has_dictionary(t.field(i).type) for i in range(t.num_fields))


def _expanded(arr: pa.Array) -> int:
    """An upper bound of ``arr``'s bytes with every dictionary in it decoded."""
    t = arr.type
    if not _has_dictionary(t):
        return int(arr.nbytes)
    if pa.types.is_dictionary(t):
        return _expanded_dictionary(arr)
    if pa.types.is_struct(t):
        return sum(_expanded(arr.field(i)) for i in range(t.num_fields))
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_map(t)
    ):
        # Every value of the flat child, used or not: an upper bound.
        return 8 * (len(arr) + 1) + _expanded(arr.values)
    # Anything else holding a dictionary (a union, a list view): counted as if every row
    # held each dictionary whole.
    return int(arr.nbytes) * max(1, len(arr))


def _expanded_dictionary(chunk: pa.DictionaryArray) -> int:
    indices, dictionary = chunk.indices, chunk.dictionary
    if len(indices) == 0 or len(dictionary) == 0:
        return int(indices.nbytes)
    value_type = dictionary.type
    if holds_bytes(value_type):
        lengths = pc.take(pc.binary_length(dictionary), indices)
        values = int(pc.sum(lengths).as_py() or 0)
        # Decoded strings keep an offset per row as well.
        return values + 8 * len(indices)
    # Other values: fixed-width types cost their share of the dictionary per row; nested
    # ones at most the whole (decoded) dictionary per row.
    if _has_dictionary(value_type) or pa.types.is_nested(value_type):
        return _expanded(dictionary) * len(indices)
    return -(-int(dictionary.nbytes) // len(dictionary)) * len(indices)
