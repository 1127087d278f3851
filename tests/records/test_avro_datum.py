"""The vectorized Avro encoder against fastavro, the reference implementation."""

from __future__ import annotations

import io
import random
from typing import Any

import fastavro
import pyarrow as pa
import pytest

from fusou.formats.avro_container import zigzag_varint
from fusou.records.avro_datum import encode_datums
from fusou.records.batch import batch_from_arrow, canonical_json, conform
from fusou.schema import TableSchema, merge_batch_schema


def _roundtrip(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], TableSchema]:
    batch = batch_from_arrow(pa.Table.from_pylist(rows), "timestamp")
    schema = merge_batch_schema(TableSchema.initial("timestamp"), batch.types).schema
    table = conform(batch, {f.name: f.type for f in schema.fields}, schema.names)
    datums = encode_datums(table, schema)
    parsed = fastavro.parse_schema(schema.to_avro())
    decoded: list[dict[str, Any]] = [
        fastavro.schemaless_reader(io.BytesIO(datums.row(i)), parsed, None)  # type: ignore[misc]
        for i in range(len(rows))
    ]
    return decoded, schema


def test_every_type_and_null_decodes_with_fastavro() -> None:
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    for i in range(3000):
        rows.append(
            {
                "timestamp": 1_700_000_000_000 + i * 997 - 10**12 * (i % 2),
                "api_no": rng.choice([0, -1, 1, 63, -64, 64, 2**62, -(2**63), 2**63 - 1, None]),
                "hp": rng.choice([0.0, -0.5, 1e300, float("inf"), None, 3.25]),
                "name": rng.choice(["大和", "", "x" * 300, None]),
                "ok": rng.choice([True, False, None]),
                "blob": rng.choice([b"", b"\x00\xff", b"y" * 200, None]),
                "nested": rng.choice([{"a": [1, 2], "b": "c"}, None]),
                "always_null": None,
            }
        )
    decoded, _ = _roundtrip(rows)
    for row, got in zip(rows, decoded, strict=True):
        expected = dict(row)
        if expected["nested"] is not None:
            expected["nested"] = canonical_json(expected["nested"])
        assert got == expected


def test_varint_boundaries_of_the_time_field() -> None:
    times = [0, 1, -1, 63, 64, -64, -65, 2**31, -(2**31), 2**62, 2**63 - 1, -(2**63)]
    decoded, _ = _roundtrip([{"timestamp": t} for t in times])
    assert [d["timestamp"] for d in decoded] == times


def test_slices_of_arrays_encode_their_own_values() -> None:
    # Arrow arrays may be views with an offset; the encoder must honour it.
    table = pa.table(
        {"timestamp": pa.array(range(10), pa.int64()), "s": [str(i) * i for i in range(10)]}
    )
    part = table.slice(4, 3)
    batch = batch_from_arrow(part, "timestamp")
    schema = merge_batch_schema(TableSchema.initial("timestamp"), batch.types).schema
    datums = encode_datums(
        conform(batch, {f.name: f.type for f in schema.fields}, schema.names), schema
    )
    parsed = fastavro.parse_schema(schema.to_avro())
    got = [fastavro.schemaless_reader(io.BytesIO(datums.row(i)), parsed, None) for i in range(3)]
    assert got == [{"timestamp": i, "s": str(i) * i} for i in (4, 5, 6)]


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_datums_concatenate_into_a_readable_container_block(codec: str) -> None:
    # The archiver's premise: stored datums can be concatenated into Avro blocks.
    rows = [{"timestamp": i, "v": i * 2, "s": f"r{i}"} for i in range(100)]
    batch = batch_from_arrow(pa.Table.from_pylist(rows), "timestamp")
    schema = merge_batch_schema(TableSchema.initial("timestamp"), batch.types).schema
    datums = encode_datums(
        conform(batch, {f.name: f.type for f in schema.fields}, schema.names), schema
    )
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema.to_avro()), [], codec=codec)
    header = out.getvalue()
    sync = header[-16:]
    body = datums.data.tobytes()
    if codec == "deflate":
        import zlib

        compressor = zlib.compressobj(wbits=-15)
        body = compressor.compress(body) + compressor.flush()

    block = zigzag_varint(len(rows)) + zigzag_varint(len(body)) + body + sync
    read = list(fastavro.reader(io.BytesIO(header + block)))
    assert read == rows
