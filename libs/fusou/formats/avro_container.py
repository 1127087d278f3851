"""Avro object container files built from stored datums (the seed's manual block construction).

A container file is a header (magic, metadata with the writer schema and codec, a 16-byte sync
marker) followed by blocks: a row count, a byte size, the (compressed) concatenated datums, and
the sync marker. The buffer already holds each record as its datum, so a block is the records'
bytes joined, plus the metadata fields appended, compressed once; nothing is decoded.

A block read alone (one ranged GET of ``[offset, offset + length)``) decodes as the stored header
followed by that block, which any Avro reader accepts.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import cramjam
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from isal import isal_zlib

from fusou.records.segments import Joined, join_rows, varints, zigzag
from fusou.schema.model import TableSchema

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
SEQ_FIELD = "_fusou_seq"
INGESTED_AT_FIELD = "_fusou_ingested_at"
CODECS = ("null", "deflate", "snappy", "zstandard")
# The time field's type in cold files: still a long of epoch milliseconds (the stored datums are
# unchanged), annotated so that engines read it as a UTC instant.
TIMESTAMP_MILLIS: dict[str, str] = {"type": "long", "logicalType": "timestamp-millis"}


def zigzag_varint(value: int) -> bytes:
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _avro_bytes(value: bytes) -> bytes:
    return zigzag_varint(len(value)) + value


def cold_schema(schema: TableSchema) -> dict[str, Any]:
    """The writer schema of a cold file: the table version's fields (the time field typed as
    ``timestamp-millis``), then the metadata that keeps the dedup rule working after the rows
    left the buffer (appended last, so a stored datum plus two varints is a datum of this
    schema)."""
    written = schema.to_avro(
        extra_fields=[
            {"name": SEQ_FIELD, "type": "long"},
            {"name": INGESTED_AT_FIELD, "type": "long"},
        ]
    ) | {"fusou.schema_version": schema.version}
    written["fields"] = [
        f | {"type": dict(TIMESTAMP_MILLIS)} if f["name"] == schema.time_field else f
        for f in written["fields"]
    ]
    return written


def cold_datums(
    records: pa.Array, seqs: npt.NDArray[np.int64], ingested_at: npt.NDArray[np.int64]
) -> Joined:
    """Datums of the cold writer schema: each stored datum with its seq and ingest time
    appended as varints (the two fields that close the schema)."""
    n = len(records)
    return join_rows([records, varints(zigzag(seqs)), varints(zigzag(ingested_at))], n)


def container_header(
    writer_schema: dict[str, Any],
    codec: str,
    sync: bytes,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """A container file's header; ``metadata`` adds keys of FUSOU's own (never ``avro.*``,
    which the format reserves) beside the schema and codec."""
    if codec not in CODECS:
        raise ValueError(f"unsupported Avro codec {codec!r}")
    if len(sync) != SYNC_SIZE:
        raise ValueError("the sync marker must be 16 bytes")
    meta = {
        b"avro.schema": json.dumps(writer_schema, separators=(",", ":")).encode(),
        b"avro.codec": codec.encode(),
    }
    for name, text in (metadata or {}).items():
        if name.startswith("avro."):
            raise ValueError(f"metadata key {name!r} is reserved by Avro")
        meta[name.encode()] = text.encode()
    out = bytearray(MAGIC)
    out += zigzag_varint(len(meta))
    for key, value in meta.items():
        out += _avro_bytes(key) + _avro_bytes(value)
    out += zigzag_varint(0)
    out += sync
    return bytes(out)


def _deflate(data: bytes) -> bytes:
    # Avro's deflate is raw DEFLATE (no zlib header), RFC 1951.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _snappy(data: bytes) -> bytes:
    # Avro's snappy is the raw block format followed by the big-endian CRC32 of the input.
    return bytes(cramjam.snappy.compress_raw(data)) + zlib.crc32(data).to_bytes(4, "big")


def _zstandard(data: bytes) -> bytes:
    return bytes(cramjam.zstd.compress(data))


_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "null": bytes,
    "deflate": _deflate,
    "snappy": _snappy,
    "zstandard": _zstandard,
}


def _inflate(data: bytes) -> bytes:
    # ISA-L inflates the same raw DEFLATE about twice as fast as zlib.
    return isal_zlib.decompress(data, -15)


def _unsnappy(data: bytes) -> bytes:
    body, crc = data[:-4], data[-4:]
    out = bytes(cramjam.snappy.decompress_raw(body))
    if zlib.crc32(out).to_bytes(4, "big") != crc:
        raise ValueError("snappy block checksum mismatch")
    return out


def _unzstd(data: bytes) -> bytes:
    return bytes(cramjam.zstd.decompress(data))


_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "null": bytes,
    "deflate": _inflate,
    "snappy": _unsnappy,
    "zstandard": _unzstd,
}


def compress(codec: str, data: bytes) -> bytes:
    return _COMPRESS[codec](data)


def decompress(codec: str, data: bytes) -> bytes:
    return _DECOMPRESS[codec](data)


def encode_block(row_count: int, datums: bytes, codec: str, sync: bytes) -> bytes:
    """One framed block: count, size, compressed datums, sync marker."""
    body = compress(codec, datums)
    return zigzag_varint(row_count) + zigzag_varint(len(body)) + body + sync
