from __future__ import annotations

import fastavro
import pytest

from fusou.errors import InvalidArgument
from fusou.schema import TableSchema, merge_batch_schema
from fusou.schema.model import FieldType as F


def test_first_batch_makes_version_one_with_time_field_first() -> None:
    m = merge_batch_schema(TableSchema.initial("ts"), {"a": F.LONG, "ts": F.LONG})
    assert m.changed and m.schema.version == 1
    assert m.schema.names == ["ts", "a"]


def test_widening_and_adding_make_new_versions_and_subsets_do_not() -> None:
    v1 = merge_batch_schema(
        TableSchema.initial("ts"), {"ts": F.LONG, "a": F.LONG, "n": F.NULL}
    ).schema
    same = merge_batch_schema(v1, {"ts": F.LONG, "a": F.LONG})
    assert not same.changed and same.schema is v1
    widened = merge_batch_schema(v1, {"ts": F.LONG, "a": F.DOUBLE})
    assert widened.changed and widened.schema.get("a") is not None
    assert widened.schema.version == 2 and widened.schema.fields[1].type is F.DOUBLE
    typed_null = merge_batch_schema(v1, {"ts": F.LONG, "n": F.STRING})
    assert typed_null.changed and typed_null.schema.fields[2].type is F.STRING
    added = merge_batch_schema(v1, {"ts": F.LONG, "b": F.BOOLEAN})
    assert added.schema.names == ["ts", "a", "n", "b"]
    # A narrower batch fits a wider version without a new version.
    assert not merge_batch_schema(widened.schema, {"ts": F.LONG, "a": F.LONG}).changed


@pytest.mark.parametrize(
    ("current", "incoming"),
    [
        (F.LONG, F.STRING),
        (F.STRING, F.LONG),
        (F.BOOLEAN, F.LONG),
        (F.JSON, F.STRING),
        (F.BYTES, F.STRING),
    ],
)
def test_conflicts_name_the_field(current: F, incoming: F) -> None:
    v1 = merge_batch_schema(TableSchema.initial("ts"), {"ts": F.LONG, "x": current}).schema
    with pytest.raises(InvalidArgument) as err:
        merge_batch_schema(v1, {"ts": F.LONG, "x": incoming})
    assert err.value.violations[0].field == "x"


def test_versions_resolve_older_data_into_newer_schemas() -> None:
    import io

    v1 = merge_batch_schema(
        TableSchema.initial("ts"), {"ts": F.LONG, "a": F.LONG, "n": F.NULL}
    ).schema
    v2 = merge_batch_schema(v1, {"ts": F.LONG, "a": F.DOUBLE, "n": F.STRING, "b": F.JSON}).schema
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(v1.to_avro()), [{"ts": 1, "a": 5, "n": None}])
    buf.seek(0)
    got = list(fastavro.reader(buf, reader_schema=fastavro.parse_schema(v2.to_avro())))
    assert got == [{"ts": 1, "a": 5.0, "n": None, "b": None}]


def test_avro_roundtrip_of_the_logical_schema() -> None:
    v = merge_batch_schema(
        TableSchema.initial("ts"),
        {
            "ts": F.LONG,
            "a": F.LONG,
            "b": F.DOUBLE,
            "c": F.STRING,
            "d": F.BOOLEAN,
            "e": F.BYTES,
            "f": F.JSON,
            "g": F.NULL,
        },
    ).schema
    back = TableSchema.from_avro(v.to_avro(), v.version)
    assert back == v
