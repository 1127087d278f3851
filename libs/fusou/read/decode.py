"""Decoding Avro blocks, Parquet row groups and stored datums into Arrow tables (CPU work, run off the event loop).

Blocks are decompressed here and their datums handed to the compiled decoder
(``fusou.formats.avro_decoder``), which releases the GIL: the blocks of one read are split over
the codec threads, each inflating and decoding its share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fusou.cpu import CODEC_THREADS
from fusou.formats.avro_container import (
    INGESTED_AT_FIELD,
    MAGIC,
    SEQ_FIELD,
    SYNC_SIZE,
    decompress,
)
from fusou.formats.avro_decoder import Layout, decode_datums, layout_of
from fusou.formats.parquet_file import read_row_group, read_whole, times_as_int64
from fusou.records.batch import batch_from_arrow, is_normalized
from fusou.schema.model import TableSchema


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    z = 0
    while True:
        byte = data[pos]
        pos += 1
        z |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return (z >> 1) ^ -(z & 1), pos


@dataclass(frozen=True)
class ContainerHeader:
    codec: str
    layout: Layout


@lru_cache(maxsize=1024)
def parse_header(header: bytes) -> ContainerHeader:
    if not header.startswith(MAGIC):
        raise ValueError("not an Avro object container header")
    pos = len(MAGIC)
    meta: dict[str, bytes] = {}
    while True:
        count, pos = _read_long(header, pos)
        if count == 0:
            break
        if count < 0:
            _, pos = _read_long(header, pos)
            count = -count
        for _ in range(count):
            klen, pos = _read_long(header, pos)
            key = header[pos : pos + klen].decode()
            pos += klen
            vlen, pos = _read_long(header, pos)
            meta[key] = header[pos : pos + vlen]
            pos += vlen
    if len(header) < pos + SYNC_SIZE:
        raise ValueError("the Avro header has no sync marker")
    schema = json.loads(meta["avro.schema"])
    codec = meta.get("avro.codec", b"null").decode()
    return ContainerHeader(codec, _layout(schema))


def _layout(schema: dict[str, Any]) -> Layout:
    layout = layout_of(schema)
    if layout is None:
        raise ValueError("the Avro schema uses types FUSOU does not write")
    return layout


def _decode_block(block: bytes, parsed: ContainerHeader) -> pa.Table:
    count, pos = _read_long(block, 0)
    size, pos = _read_long(block, pos)
    return _decode_all(decompress(parsed.codec, block[pos : pos + size]), count, parsed.layout)


def _decode_all(data: Any, count: int, layout: Layout) -> pa.Table:
    table, used = decode_datums(data, count, layout)
    if used != len(data):
        raise ValueError(f"{len(data) - used} bytes left over after {count} Avro datums")
    return table


def decode_blocks(header: bytes, blocks: list[bytes]) -> list[pa.Table]:
    """Decode blocks of one file; one table per block, in order, spread over the codec
    threads (inflating and decoding both release the GIL)."""
    parsed = parse_header(header)
    if len(blocks) == 1:
        return [_decode_block(blocks[0], parsed)]
    return list(CODEC_THREADS.map(_decode_block, blocks, [parsed] * len(blocks)))


def decode_hot_rows(
    schema: TableSchema,
    datums: memoryview,
    count: int,
    seqs: npt.NDArray[np.int64],
    ingested: npt.NDArray[np.int64],
) -> pa.Table:
    """Stored datums of one schema version, laid end to end, with their seq and ingest time."""
    table = _decode_all(datums, count, _layout(schema.to_avro()))
    table = table.append_column(SEQ_FIELD, pa.array(seqs, pa.int64()))
    return table.append_column(INGESTED_AT_FIELD, pa.array(ingested, pa.int64()))


@dataclass(frozen=True)
class RawRows:
    """Where a raw fragment's row group gets the metadata its rows do not carry: row i has seq
    ``first_seq + first_row + i`` and the fragment's arrival time."""

    first_seq: int
    first_row: int
    ingested_at: int


def row_group_rows(
    footer: bytes,
    file_length: int,
    number: int,
    offset: int,
    data: bytes,
    time_field: str,
    raw: RawRows | None,
) -> pa.Table:
    """One Parquet row group with its seq and ingest time: stored as columns in compacted
    files (whose time, stored as a timestamp, comes back as int64), derived from the catalog
    for raw fragments (whose columns are normalized to FUSOU's types, as at upload)."""
    return _with_metadata(
        read_row_group(footer, file_length, number, offset, data), time_field, raw
    )


def parquet_rows(
    data: bytes, time_field: str, raw: RawRows | None, *, string_dictionaries: bool = False
) -> pa.Table:
    """A whole Parquet file's rows (``data`` is the file), as ``row_group_rows`` gives them;
    with ``string_dictionaries``, string columns stay dictionary-encoded."""
    table = read_whole(data, string_dictionaries=string_dictionaries)[0]
    return _with_metadata(table, time_field, raw, string_dictionaries)


def _with_metadata(
    table: pa.Table, time_field: str, raw: RawRows | None, string_dictionaries: bool = False
) -> pa.Table:
    if raw is None:
        return times_as_int64(table, time_field)
    # Raw fragments were checked whole at upload; most need no normalizing either.
    if not is_normalized(table, time_field, string_dictionaries=string_dictionaries):
        table = batch_from_arrow(
            table, time_field, field_prefix="raw fragment", string_dictionaries=string_dictionaries
        ).table
    n = table.num_rows
    first = raw.first_seq + raw.first_row
    table = table.append_column(SEQ_FIELD, pa.array(np.arange(first, first + n, dtype=np.int64)))
    return table.append_column(
        INGESTED_AT_FIELD, pa.array(np.full(n, raw.ingested_at, dtype=np.int64))
    )
