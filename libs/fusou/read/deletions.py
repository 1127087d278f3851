"""Deletions (DeleteRows, retention) as reads and compaction apply them.

A deletion hides every row of its table whose seq is at most its ``max_seq``, whose time lies
in its range and whose values meet its filters. It applies to stored rows before the dedup
rule, exactly as if they had never been written: a read returns the same rows whether a
deleted row is still in a file or compaction has dropped it, and so does every later
compaction of the files that still hold it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from fusou.formats.avro_container import SEQ_FIELD
from fusou.read.filters import Filter, Op, filter_mask, filter_violations
from fusou.read.merge import column_numpy
from fusou.schema.model import TableSchema


@dataclass(frozen=True)
class Deletion:
    deletion_id: int
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive
    max_seq: int
    filters: tuple[Filter, ...] = ()


def filters_json(filters: Sequence[Filter]) -> str:
    """The filters as the catalog keeps them."""
    return json.dumps(
        [{"column": f.column, "op": f.op.name, "values": list(f.values)} for f in filters]
    )


def _number(value: Any) -> Any:
    # Operands arrive as doubles (protobuf Values); jsonb writes 1e19 back as an integer.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def filters_of(raw: Any) -> tuple[Filter, ...]:
    items = json.loads(raw) if isinstance(raw, str) else raw
    return tuple(
        Filter(i["column"], Op[i["op"]], tuple(_number(v) for v in i["values"])) for i in items
    )


def deletions_of(raw: str | None) -> list[Deletion]:
    """Deletions from the JSON the snapshot statements build: an array of
    [deletion_id, start_time, end_time, max_seq, filters]."""
    if not raw:
        return []
    return [
        Deletion(int(d[0]), int(d[1]), int(d[2]), int(d[3]), filters_of(d[4]))
        for d in json.loads(raw)
    ]


# The SQL expression the snapshot statements select a table's deletions with (the table id is
# $1, the range [$2, $3); NULLs for every deletion of the table).
DELETIONS_JSON = (
    "(SELECT json_agg(json_build_array(deletion_id, start_time, end_time, max_seq, filters) "
    "ORDER BY deletion_id) FROM fusou_deletions WHERE table_id = $1 "
    "AND ($3::bigint IS NULL OR start_time < $3) AND ($2::bigint IS NULL OR end_time > $2))"
)


def in_force(deletions: Sequence[Deletion], latest: TableSchema) -> list[Deletion]:
    """The deletions that can hide a row under the table's schema now. A condition valid when
    its deletion was made becomes invalid only when its column, null in every row until then,
    takes a type its operand does not fit: every row the deletion reaches is null there, so
    the condition meets none of them, and the deletion hides nothing."""
    return [d for d in deletions if not filter_violations(d.filters, latest)]


def deleted_mask(
    part: pa.Table, deletions: Sequence[Deletion], time_field: str
) -> np.ndarray[Any, Any] | None:
    """Per row of ``part`` (conformed: it has the seq column and the time field), whether a
    deletion (``in_force``) hides it; None when none does."""
    if not deletions or not part.num_rows:
        return None
    seqs = column_numpy(part.column(SEQ_FIELD))
    times = column_numpy(part.column(time_field))
    hidden = np.zeros(part.num_rows, dtype=bool)
    for d in deletions:
        hit = (seqs <= d.max_seq) & (times >= d.start) & (times < d.end)
        if not hit.any():
            continue
        if d.filters:
            meets = filter_mask(part, d.filters).fill_null(False)
            hit &= column_numpy(meets).astype(bool)
        hidden |= hit
    return hidden if hidden.any() else None


def drop_deleted(
    parts: Sequence[pa.Table], deletions: Sequence[Deletion], latest: TableSchema
) -> tuple[list[pa.Table], int]:
    """The parts (conformed to ``latest``) without the rows the deletions hide, and how many
    those were."""
    deletions = in_force(deletions, latest)
    time_field = latest.time_field
    if not deletions:
        return list(parts), 0
    out: list[pa.Table] = []
    dropped = 0
    for part in parts:
        hidden = deleted_mask(part, deletions, time_field)
        if hidden is None:
            out.append(part)
            continue
        dropped += int(hidden.sum())
        out.append(part.filter(pa.array(~hidden)))
    return out, dropped
