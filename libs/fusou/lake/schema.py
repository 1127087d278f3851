"""FUSOU's table schemas as Iceberg schemas, and their evolution.

Each FUSOU field is an Iceberg column of the type ReadRange answers it with: the time field a
``timestamptz`` (Iceberg's microseconds; FUSOU's milliseconds fit exactly), JSON and a field
only ever null a ``string``. New FUSOU versions add columns. FUSOU's widenings (a null-only
field taking a type, LONG to DOUBLE) are not promotions Iceberg allows, so such a column is
dropped and added again under a new field id in the same commit that rewrites every day of
the table: an old file never meets a column id it does not hold the right type for.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.table.update.schema import UpdateSchema
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DoubleType,
    IcebergType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from fusou.schema.model import FieldType, TableSchema

_TYPES: dict[FieldType, IcebergType] = {
    FieldType.NULL: StringType(),
    FieldType.BOOLEAN: BooleanType(),
    FieldType.LONG: LongType(),
    FieldType.DOUBLE: DoubleType(),
    FieldType.STRING: StringType(),
    FieldType.BYTES: BinaryType(),
    FieldType.JSON: StringType(),
}

# The partition field's id: Iceberg numbers partition fields from 1000.
_PARTITION_FIELD_ID = 1000


def column_type(schema: TableSchema, name: str) -> IcebergType:
    if name == schema.time_field:
        return TimestamptzType()
    field = schema.get(name)
    assert field is not None
    return _TYPES[field.type]


def initial_schema(latest: TableSchema) -> Schema:
    """The Iceberg schema of a table first published at ``latest``: field ids 1..n in FUSOU's
    order, the time field required (every row has one)."""
    return Schema(
        *(
            NestedField(
                i,
                f.name,
                column_type(latest, f.name),
                required=f.name == latest.time_field,
            )
            for i, f in enumerate(latest.fields, start=1)
        )
    )


def partition_spec(schema: Schema, time_field: str) -> PartitionSpec:
    """Partitioned by the UTC day of the time field."""
    return PartitionSpec(
        PartitionField(
            source_id=schema.find_field(time_field).field_id,
            field_id=_PARTITION_FIELD_ID,
            transform=DayTransform(),
            name=f"{time_field}_day",
        )
    )


def sort_order(schema: Schema, time_field: str) -> SortOrder:
    """Rows sorted by time, as every FUSOU file is."""
    return SortOrder(
        SortField(source_id=schema.find_field(time_field).field_id, transform=IdentityTransform())
    )


@dataclass(frozen=True)
class SchemaChange:
    added: tuple[str, ...] = ()
    retyped: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.retyped)


def schema_change(current: Schema, latest: TableSchema) -> SchemaChange:
    """What bringing ``current`` to ``latest`` takes (FUSOU never drops or renames a field)."""
    names = {f.name: f for f in current.fields}
    added: list[str] = []
    retyped: list[str] = []
    for f in latest.fields:
        have = names.get(f.name)
        if have is None:
            added.append(f.name)
        elif have.field_type != column_type(latest, f.name):
            retyped.append(f.name)
    return SchemaChange(tuple(added), tuple(retyped))


def apply_change(update: UpdateSchema, change: SchemaChange, latest: TableSchema) -> None:
    for name in change.retyped:
        update.delete_column(name)
    for name in (*change.retyped, *change.added):
        update.add_column(name, column_type(latest, name))
