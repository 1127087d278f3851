"""DeclareTable: a table's time field, key fields and (optionally) its first schema, up front."""

from __future__ import annotations

import json
from collections.abc import Sequence

from fusou.catalog.tables import (
    DEFAULT_TIME_FIELD,
    UNCHANGED,
    DeclareResult,
    TableRegistry,
    Unchanged,
)
from fusou.errors import InvalidArgument
from fusou.names import check_name
from fusou.schema.model import TableSchema


async def declare_table(
    registry: TableRegistry,
    dataset_id: str,
    table: str,
    time_field: str,
    key_fields: Sequence[str],
    avro_schema: str,
    retention_ms: int | Unchanged | None = UNCHANGED,
) -> DeclareResult:
    """Declare the table; an empty ``time_field`` means the default, an empty ``avro_schema``
    none (the first batch then sets the schema)."""
    check_name("dataset_id", dataset_id)
    check_name("table", table)
    time_field = time_field or DEFAULT_TIME_FIELD
    schema = None
    if avro_schema:
        try:
            raw = json.loads(avro_schema)
        except json.JSONDecodeError as exc:
            raise InvalidArgument("avro_schema", f"not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidArgument("avro_schema", "nests too deeply to be a schema") from None
        if isinstance(raw, dict) and "fusou.time_field" not in raw:
            raw = {**raw, "fusou.time_field": time_field}
        schema = TableSchema.from_avro(raw, max_fields=registry.max_fields)
    return await registry.declare(
        dataset_id, table, time_field, list(key_fields), schema, retention_ms
    )
