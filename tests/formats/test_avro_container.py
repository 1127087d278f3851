"""Container files built by hand, checked against fastavro and polars."""

from __future__ import annotations

import io
import os

import fastavro
import polars as pl
import pyarrow as pa
import pytest

from fusou.formats.avro_container import (
    CODECS,
    cold_schema,
    compress,
    container_header,
    decompress,
    encode_block,
    zigzag_varint,
)
from fusou.formats.avro_decoder import layout_of
from fusou.schema.model import FieldType, SchemaField, TableSchema
from tests.formats.helpers import fastavro_datums

SCHEMA = {
    "type": "record",
    "name": "r",
    "fields": [{"name": "t", "type": "long"}, {"name": "s", "type": ["null", "string"]}],
}


@pytest.mark.parametrize("codec", CODECS)
def test_hand_built_files_read_with_fastavro(codec: str) -> None:
    sync = os.urandom(16)
    first = [{"t": i, "s": f"v{i}" if i % 3 else None} for i in range(100)]
    second = [{"t": 1000 + i, "s": "x" * i} for i in range(50)]
    data = (
        container_header(SCHEMA, codec, sync)
        + encode_block(len(first), fastavro_datums(SCHEMA, first), codec, sync)
        + encode_block(len(second), fastavro_datums(SCHEMA, second), codec, sync)
    )
    assert list(fastavro.reader(io.BytesIO(data))) == first + second
    if codec != "zstandard":  # polars reads deflate and snappy, not zstandard
        assert pl.read_avro(io.BytesIO(data)).to_dicts() == first + second


@pytest.mark.parametrize("codec", CODECS)
def test_compression_roundtrips(codec: str) -> None:
    payload = os.urandom(1000) + b"abc" * 5000
    assert decompress(codec, compress(codec, payload)) == payload


def test_snappy_checksum_is_verified() -> None:
    packed = bytearray(compress("snappy", b"hello world" * 10))
    packed[-1] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        decompress("snappy", bytes(packed))


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-64, b"\x7f"), (64, b"\x80\x01"), (2**62, None)],
)
def test_zigzag_varint(value: int, encoded: bytes | None) -> None:
    out = zigzag_varint(value)
    if encoded is not None:
        assert out == encoded
    # Decodes with fastavro's long reader.
    assert fastavro.schemaless_reader(io.BytesIO(out), "long", None) == value


def test_bad_codec_and_sync_are_refused() -> None:
    with pytest.raises(ValueError):
        container_header(SCHEMA, "lz4", os.urandom(16))
    with pytest.raises(ValueError):
        container_header(SCHEMA, "null", b"short")


def test_header_metadata_is_read_back_and_avro_keys_are_reserved() -> None:
    sync = os.urandom(16)
    rows = [{"t": i, "s": None} for i in range(3)]
    data = container_header(
        SCHEMA, "null", sync, {"fusou.table": "battle", "fusou.key_fields": "[]"}
    ) + encode_block(len(rows), fastavro_datums(SCHEMA, rows), "null", sync)
    reader = fastavro.reader(io.BytesIO(data))
    assert list(reader) == rows
    assert reader.metadata["fusou.table"] == "battle"
    assert reader.metadata["fusou.key_fields"] == "[]"
    with pytest.raises(ValueError, match="reserved"):
        container_header(SCHEMA, "null", sync, {"avro.codec": "deflate"})


def test_cold_schema_types_the_time_field_and_still_decodes_as_long() -> None:
    schema = TableSchema(
        "t", (SchemaField("t", FieldType.LONG), SchemaField("s", FieldType.STRING)), 1
    )
    written = cold_schema(schema)
    (time_field,) = [f for f in written["fields"] if f["name"] == "t"]
    assert time_field["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    layout = layout_of(written)
    assert layout is not None
    assert layout.names[0] == "t" and layout.types[0] == pa.int64()
    # The stored schema of the table is untouched: only cold files carry the logical type.
    assert all(f["type"] != time_field["type"] for f in schema.to_avro()["fields"])
