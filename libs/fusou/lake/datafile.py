"""One day of a table as an Iceberg data file: Parquet carrying the Iceberg field ids, the time
as microsecond ``timestamptz``, rows in time order (declared as the sorting column), and the
``fusou.*`` key-value metadata every FUSOU file carries.

The rows are already deduplicated (the day holds exactly what ReadRange answers for it), so
the file has no seq column: Iceberg readers need no rule beyond "every row counts".
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    schema_to_pyarrow,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata

from fusou.formats.file_metadata import SEQ_FIELD_KEY, SORT_ORDER, FileDescription
from fusou.records.string_dictionaries import decode_dictionaries

_TIME_TYPE = pa.timestamp("us", "UTC")


def day_table(rows: pa.Table, schema: Schema, time_field: str) -> pa.Table:
    """``rows`` (FUSOU's read columns, time in epoch ms) as the Iceberg schema's Arrow form."""
    target = schema_to_pyarrow(schema, include_field_ids=True)
    rows = decode_dictionaries(rows)
    have = set(rows.column_names)
    columns: list[pa.ChunkedArray | pa.Array] = []
    for field in target:
        if field.name not in have:
            columns.append(pa.nulls(rows.num_rows, field.type))
            continue
        col = rows.column(field.name)
        if field.name == time_field:
            col = pc.cast(pc.cast(col, pa.int64()).cast(pa.timestamp("ms", "UTC")), _TIME_TYPE)
        elif pa.types.is_null(col.type):
            col = pa.nulls(rows.num_rows, field.type)
        elif col.type != field.type:
            col = pc.cast(col, field.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=target)


def parquet_bytes(table: pa.Table, description: FileDescription) -> bytes:
    meta = description.key_value_metadata()
    # Deduplicated rows carry no seq: time is the order they keep.
    del meta[SEQ_FIELD_KEY]
    meta[SORT_ORDER] = json.dumps([description.time_field])
    sink = io.BytesIO()
    time_index = table.column_names.index(description.time_field)
    with pq.ParquetWriter(
        sink,
        table.schema.with_metadata({**(table.schema.metadata or {}), **meta}),
        compression="zstd",
        sorting_columns=[pq.SortingColumn(time_index)],
    ) as writer:
        writer.write_table(table, row_group_size=128 * 1024)
    return sink.getvalue()


def data_file(metadata: TableMetadata, location: str, data: bytes) -> DataFile:
    """The manifest entry of the file ``data`` written at ``location``: statistics and the day
    partition come from its footer (in memory, so no read back from the store)."""
    schema = metadata.schema()
    footer = pq.read_metadata(pa.BufferReader(data))
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=footer,
        stats_columns=compute_statistics_plan(schema, metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=statistics.partition(metadata.spec(), schema),
        file_size_in_bytes=len(data),
        sort_order_id=metadata.default_sort_order_id,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )
