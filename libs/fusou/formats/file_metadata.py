"""What every file FUSOU writes says about itself, for engines that read it without FUSOU.

The same keys go into a cold Avro file's header metadata and an optimized Parquet file's
key-value metadata, so an engine pointed at either learns which dataset and table the rows
belong to, the schema version, the dedup key (the key fields, or the whole record when there
are none: an empty list), the time field and the column holding the ingest sequence that the
dedup rule orders by, and how the rows are sorted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

DATASET: Final = "fusou.dataset"
TABLE: Final = "fusou.table"
SCHEMA_VERSION: Final = "fusou.schema_version"
KEY_FIELDS: Final = "fusou.key_fields"
TIME_FIELD: Final = "fusou.time_field"
SEQ_FIELD_KEY: Final = "fusou.seq_field"
SORT_ORDER: Final = "fusou.sort_order"


def file_metadata(
    *,
    dataset_id: str,
    table: str,
    schema_version: int,
    key_fields: Sequence[str],
    time_field: str,
    seq_field: str,
) -> dict[str, str]:
    """The self-description of one file's rows (string values: both formats store bytes)."""
    return {
        DATASET: dataset_id,
        TABLE: table,
        SCHEMA_VERSION: str(schema_version),
        KEY_FIELDS: json.dumps(list(key_fields)),
        TIME_FIELD: time_field,
        SEQ_FIELD_KEY: seq_field,
        # Rows are in (time, seq) order: the order the dedup rule and range reads rely on.
        SORT_ORDER: json.dumps([time_field, seq_field]),
    }
