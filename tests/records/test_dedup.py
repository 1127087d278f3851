"""Dedup keys are stable across storage forms and schema versions."""

from __future__ import annotations

import pyarrow as pa

from fusou.records.dedup import dedup_keys
from fusou.schema.model import FieldType as F


def _keys(table: pa.Table, types: dict[str, F], key_fields: tuple[str, ...] = ()) -> list[bytes]:
    return [bytes(k) for k in dedup_keys(table, types, key_fields)]


def test_equal_records_share_a_key_and_different_ones_do_not() -> None:
    t = pa.table({"timestamp": [1, 1, 2], "v": ["a", "a", "a"]})
    k = _keys(t, {"timestamp": F.LONG, "v": F.STRING})
    assert k[0] == k[1]
    assert k[0] != k[2]
    assert all(len(x) == 16 for x in k)


def test_keys_survive_widening_added_fields_and_column_order() -> None:
    v1 = pa.table({"timestamp": pa.array([1, 2], pa.int64()), "x": pa.array([5, None], pa.int64())})
    v2 = pa.table(
        {
            "y": pa.array([None, None], pa.string()),
            "x": pa.array([5.0, None], pa.float64()),
            "timestamp": pa.array([1, 2], pa.int64()),
        }
    )
    assert _keys(v1, {"timestamp": F.LONG, "x": F.LONG}) == _keys(
        v2, {"timestamp": F.LONG, "x": F.DOUBLE, "y": F.STRING}
    )


def test_key_fields_ignore_the_other_fields() -> None:
    t = pa.table({"timestamp": [1, 2], "id": [7, 7], "hp": [1.5, 9.0]})
    types = {"timestamp": F.LONG, "id": F.LONG, "hp": F.DOUBLE}
    a, b = _keys(t, types, ("id",))
    assert a == b
    c, d = _keys(t, types)
    assert c != d


def test_values_of_different_types_or_fields_differ() -> None:
    t = pa.table({"timestamp": [1], "a": ["1"]})
    u = pa.table({"timestamp": [1], "a": [1]})
    w = pa.table({"timestamp": [1], "b": ["1"]})
    ka = _keys(t, {"timestamp": F.LONG, "a": F.STRING})
    kb = _keys(u, {"timestamp": F.LONG, "a": F.LONG})
    kc = _keys(w, {"timestamp": F.LONG, "b": F.STRING})
    assert len({ka[0], kb[0], kc[0]}) == 3


def test_field_boundaries_are_unambiguous() -> None:
    # "ab" + "c" must not collide with "a" + "bc".
    t = pa.table({"timestamp": [1, 1], "p": ["ab", "a"], "q": ["c", "bc"]})
    k = _keys(t, {"timestamp": F.LONG, "p": F.STRING, "q": F.STRING})
    assert k[0] != k[1]


def test_nan_and_negative_zero_are_canonical() -> None:
    import struct

    other_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
    t = pa.table({"timestamp": [1, 1, 1, 1], "x": [float("nan"), other_nan, -0.0, 0.0]})
    k = _keys(t, {"timestamp": F.LONG, "x": F.DOUBLE})
    assert k[0] == k[1]
    assert k[2] == k[3]
