"""The compiled datum decoder against fastavro, the reference reader, on the same bytes."""

from __future__ import annotations

import math
import random
from typing import Any

import pyarrow as pa
import pytest

from fusou.formats.avro_decoder import decode_datums, layout_of
from tests.formats.helpers import fastavro_datums

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "r",
    "fields": [
        {"name": "t", "type": "long"},
        {"name": "n", "type": ["null", "long"]},
        {"name": "d", "type": ["null", "double"]},
        {"name": "s", "type": ["null", "string"]},
        {"name": "b", "type": ["null", "bytes"]},
        {"name": "f", "type": ["null", "boolean"]},
        {"name": "plain_s", "type": "string"},
        {"name": "plain_d", "type": "double"},
        {"name": "plain_f", "type": "boolean"},
        {"name": "seq", "type": "long"},
    ],
}

EDGE_LONGS = [0, 1, -1, 63, -64, 64, 2**31, -(2**31), 2**53 + 1, 2**63 - 1, -(2**63)]
EDGE_DOUBLES = [0.0, -0.0, 1.5, -2.25e300, 5e-324, math.inf, -math.inf]


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)

    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.3 else value

    rows = []
    for i in range(n):
        rows.append(
            {
                "t": rng.choice(EDGE_LONGS) if i % 3 == 0 else rng.randint(-(10**12), 10**12),
                "n": maybe(rng.choice(EDGE_LONGS)),
                "d": maybe(rng.choice(EDGE_DOUBLES) if i % 2 else rng.uniform(-1e6, 1e6)),
                "s": maybe("".join(rng.choice("aé字🙂x") for _ in range(rng.randint(0, 200)))),
                "b": maybe(bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))),
                "f": maybe(rng.random() < 0.5),
                "plain_s": "" if i % 4 == 0 else f"row-{i}",
                "plain_d": rng.uniform(-1, 1),
                "plain_f": i % 2 == 0,
                "seq": i,
            }
        )
    return rows


@pytest.mark.parametrize(("n", "seed"), [(1, 1), (17, 2), (4096, 3)])
def test_decodes_what_fastavro_wrote(n: int, seed: int) -> None:
    rows = _rows(n, seed)
    data = fastavro_datums(SCHEMA, rows)
    layout = layout_of(SCHEMA)
    assert layout is not None
    table, used = decode_datums(data, n, layout)
    assert used == len(data)
    assert table.column_names == [f["name"] for f in SCHEMA["fields"]]
    assert table.schema.field("s").type == pa.string()
    assert table.schema.field("b").type == pa.binary()
    table.validate(full=True)
    decoded = table.to_pylist()
    for got, want in zip(decoded, rows, strict=True):
        for name, value in want.items():
            if isinstance(value, float) and value == 0.0:
                assert math.copysign(1, got[name]) == math.copysign(1, value), name
            assert got[name] == value, name


def test_stops_where_the_rows_end() -> None:
    rows = _rows(5, 4)
    data = fastavro_datums(SCHEMA, rows)
    layout = layout_of(SCHEMA)
    assert layout is not None
    _, used = decode_datums(data + b"trailing", 5, layout)
    assert used == len(data)
    first, used_first = decode_datums(data, 2, layout)
    assert first.num_rows == 2
    assert used_first == len(fastavro_datums(SCHEMA, rows[:2]))


def test_no_rows() -> None:
    layout = layout_of(SCHEMA)
    assert layout is not None
    table, used = decode_datums(b"", 0, layout)
    assert (table.num_rows, used) == (0, 0)
    assert table.column_names == [f["name"] for f in SCHEMA["fields"]]


@pytest.mark.parametrize(
    ("cut", "why"),
    [
        (lambda d: d[:-1], "truncated"),
        (lambda d: d[:3], "truncated early"),
        (lambda d: b"\xff" * 11 + d[11:], "a varint longer than 64 bits"),
    ],
)
def test_malformed_datums_raise_instead_of_reading_past_the_end(cut: Any, why: str) -> None:
    data = fastavro_datums(SCHEMA, _rows(3, 5))
    layout = layout_of(SCHEMA)
    assert layout is not None
    with pytest.raises(ValueError, match="malformed Avro datum"):
        decode_datums(cut(data), 3, layout)


def test_bad_union_branch_and_boolean_are_refused() -> None:
    schema = {
        "type": "record",
        "name": "r",
        "fields": [{"name": "a", "type": ["null", "long"]}, {"name": "f", "type": "boolean"}],
    }
    layout = layout_of(schema)
    assert layout is not None
    with pytest.raises(ValueError, match="row 0"):
        decode_datums(b"\x04\x02\x01", 1, layout)  # union branch 2 does not exist
    with pytest.raises(ValueError, match="row 1"):
        decode_datums(b"\x02\x02\x01\x00\x07", 2, layout)  # a boolean byte of 7


def test_a_string_length_past_the_buffer_is_refused() -> None:
    schema = {"type": "record", "name": "r", "fields": [{"name": "s", "type": "string"}]}
    layout = layout_of(schema)
    assert layout is not None
    with pytest.raises(ValueError, match="malformed"):
        decode_datums(b"\x7e" + b"x" * 10, 1, layout)  # claims 63 bytes
    with pytest.raises(ValueError, match="malformed"):
        decode_datums(b"\x01", 1, layout)  # a negative length


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "array", "items": "long"},
        ["long", "null"],
        ["null", "long", "string"],
        ["null", {"type": "map", "values": "long"}],
        "float",
        "null",
    ],
)
def test_shapes_fusou_never_writes_have_no_layout(field_type: Any) -> None:
    schema = {"type": "record", "name": "r", "fields": [{"name": "x", "type": field_type}]}
    assert layout_of(schema) is None


def test_layouts_are_shared_between_equal_schemas() -> None:
    assert layout_of(SCHEMA) is layout_of(dict(SCHEMA))


def test_compiles_without_a_writable_cache_location(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in a read-only image whose user has no home: numba finds nowhere to cache.
    from numba.core import caching

    from fusou.formats.avro_decoder import _compiled

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])

    def add_one(x: int) -> int:
        return x + 1

    compiled = _compiled(add_one)
    assert compiled(41) == 42
    cache = getattr(compiled, "_cache")  # noqa: B009 - numba keeps no public handle on it
    assert type(cache).__name__ == "NullCache"
