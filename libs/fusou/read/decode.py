"""Decoding Avro blocks and stored datums into Arrow tables (CPU work, run off the event loop).

Blocks are decompressed here and handed to polars' Avro reader as an uncompressed container
(header with the "null" codec + the block), so every codec goes through one fast decoder.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from fusou.cpu import CODEC_THREADS
from fusou.formats.avro_container import (
    MAGIC,
    SYNC_SIZE,
    cold_datums,
    cold_schema,
    container_header,
    decompress,
    encode_block,
)
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
    schema: dict[str, Any]
    codec: str
    sync: bytes
    plain_header: bytes  # the same header with the "null" codec


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
    sync = header[pos : pos + SYNC_SIZE]
    schema = json.loads(meta["avro.schema"])
    codec = meta.get("avro.codec", b"null").decode()
    return ContainerHeader(schema, codec, sync, container_header(schema, "null", sync))


def _plain_block(block: bytes, codec: str, sync: bytes) -> bytes:
    count, pos = _read_long(block, 0)
    size, pos = _read_long(block, pos)
    return encode_block(count, decompress(codec, block[pos : pos + size]), "null", sync)


def decode_blocks(header: bytes, blocks: list[bytes]) -> list[pa.Table]:
    """Decode blocks of one file; one table per block, in order.

    The blocks go to polars as two containers decoded at once on the codec threads (polars
    releases the GIL), each thread inflating its own half first.
    """
    parsed = parse_header(header)
    half = (len(blocks) + 1) // 2
    groups = [blocks[:half], blocks[half:]] if len(blocks) > 1 else [blocks]

    def decode(group: list[bytes]) -> pa.Table:
        plain = b"".join(_plain_block(b, parsed.codec, parsed.sync) for b in group)
        return _read_container(parsed.plain_header + plain)

    out: list[pa.Table] = []
    for group, table in zip(groups, CODEC_THREADS.map(decode, groups), strict=True):
        start = 0
        for b in group:
            count, _ = _read_long(b, 0)
            out.append(table.slice(start, count))
            start += count
    return out


def _read_container(data: bytes) -> pa.Table:
    return pl.read_avro(io.BytesIO(data)).to_arrow()


def decode_hot_rows(
    schema: TableSchema, seqs: list[int], ingested: list[int], records: list[bytes]
) -> pa.Table:
    """Stored datums of one schema version, with their seq and ingest time, as a table."""
    joined = cold_datums(
        pa.array(records, pa.binary()),
        np.asarray(seqs, dtype=np.int64),
        np.asarray(ingested, dtype=np.int64),
    )
    sync = b"\x00" * SYNC_SIZE
    header = container_header(cold_schema(schema), "null", sync)
    return _read_container(header + encode_block(len(records), joined.data.tobytes(), "null", sync))
