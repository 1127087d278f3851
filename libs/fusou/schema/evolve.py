"""Schema evolution: fit a batch's inferred schema into a table's latest version."""

from __future__ import annotations

from dataclasses import dataclass

from fusou.errors import InvalidArgument
from fusou.schema.model import FieldType, SchemaField, TableSchema, widen


@dataclass(frozen=True)
class MergeResult:
    schema: TableSchema
    # True when ``schema`` differs from the table's latest and must become a new version.
    changed: bool


def merge_batch_schema(
    latest: TableSchema,
    batch: dict[str, FieldType],
    *,
    field_prefix: str = "",
    max_fields: int | None = None,
) -> MergeResult:
    """Widen ``latest`` to hold ``batch`` (field name -> inferred type).

    Raises InvalidArgument naming the first conflicting field (after ``field_prefix``), or the
    first new field past ``max_fields`` (a table that batches keep adding fields to must not
    grow without bound); new fields are appended in the batch's order so that a version's
    field order is stable.
    """
    fields = list(latest.fields)
    changed = False
    for name, incoming in batch.items():
        existing = latest.get(name)
        if existing is None:
            if max_fields is not None and len(fields) >= max_fields:
                raise InvalidArgument(
                    field_prefix + name,
                    f"would be field {len(fields) + 1} of the table, over the limit of "
                    f"{max_fields} fields per table (FUSOU_MAX_FIELDS)",
                )
            fields.append(SchemaField(name, incoming))
            changed = True
            continue
        merged = widen(existing.type, incoming)
        if merged is None:
            raise InvalidArgument(
                field_prefix + name,
                f"has type {incoming.value} in this batch but the table's field is "
                f"{existing.type.value}",
            )
        if name == latest.time_field and merged is not FieldType.LONG:
            raise InvalidArgument(
                field_prefix + name, "the time field must be an integer (epoch milliseconds)"
            )
        if merged is not existing.type:
            fields[fields.index(existing)] = SchemaField(name, merged)
            changed = True
    if not changed and latest.version > 0:
        return MergeResult(latest, False)
    # Version 0 is the placeholder of a table with no data yet: the first batch always makes
    # version 1, even one holding only the time field.
    return MergeResult(TableSchema(latest.time_field, tuple(fields), latest.version + 1), True)
