"""Reference Avro datums written by fastavro, for checking what FUSOU writes and reads."""

from __future__ import annotations

import io
from typing import Any

import fastavro


def fastavro_datums(schema: dict[str, Any], rows: list[dict[str, Any]]) -> bytes:
    """``rows`` as schemaless Avro datums of ``schema``, laid end to end."""
    parsed = fastavro.parse_schema(schema)
    out = io.BytesIO()
    for row in rows:
        fastavro.schemaless_writer(out, parsed, row)
    return out.getvalue()
