"""What every file FUSOU writes says about itself, for engines that read it without FUSOU.

The same keys go into a cold Avro file's header metadata and an optimized Parquet file's
key-value metadata, so an engine pointed at either learns which dataset and table the rows
belong to, the schema version, the dedup key (the key fields, or the whole record when there
are none: an empty list), the time field and the column holding the ingest sequence that the
dedup rule orders by, and how the rows are sorted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

DATASET: Final = "fusou.dataset"
TABLE: Final = "fusou.table"
SCHEMA_VERSION: Final = "fusou.schema_version"
KEY_FIELDS: Final = "fusou.key_fields"
TIME_FIELD: Final = "fusou.time_field"
SEQ_FIELD_KEY: Final = "fusou.seq_field"
SORT_ORDER: Final = "fusou.sort_order"


@dataclass(frozen=True)
class FileDescription:
    """What a file tells an engine that knows nothing of FUSOU's catalog: whose rows it holds,
    in which schema version, and how to apply the dedup rule to them (among rows of equal key,
    the highest seq wins; no key fields means the whole record is the key)."""

    dataset: str
    table: str
    schema_version: int
    key_fields: tuple[str, ...]
    time_field: str
    seq_field: str

    def key_value_metadata(self) -> dict[str, str]:
        """The description as string pairs: both formats store bytes."""
        return {
            DATASET: self.dataset,
            TABLE: self.table,
            SCHEMA_VERSION: str(self.schema_version),
            KEY_FIELDS: json.dumps(list(self.key_fields)),
            TIME_FIELD: self.time_field,
            SEQ_FIELD_KEY: self.seq_field,
            # Rows are in (time, seq) order: the order the dedup rule and range reads rely on.
            SORT_ORDER: json.dumps([self.time_field, self.seq_field]),
        }
