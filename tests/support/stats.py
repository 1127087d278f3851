"""GetStats answers as plain figures, to compare with what the dashboard shows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from fusou.api.reader.v1 import reader_pb2
from fusou.catalog.stats import TableStats

# GetStats's field names where the dashboard's differ.
RENAMED = {"oldest_hot_row_age_seconds": "oldest_hot_row_age_s"}
AGE = "oldest_hot_row_age_s"
TableKey = tuple[str, str]


def figures_of_json(answer: Mapping[str, Any]) -> dict[TableKey, dict[str, float]]:
    """Per (dataset, table), every figure of a GetStats answer in proto3 JSON (int64 fields
    are strings there, absent fields are zero)."""
    fields = [
        f.name
        for f in reader_pb2.TableStats.DESCRIPTOR.fields
        if f.name not in ("dataset_id", "table")
    ]
    return {
        (t["dataset_id"], t["table"]): {
            RENAMED.get(name, name): float(t.get(name, 0)) for name in fields
        }
        for t in answer.get("tables", [])
    }


def figures_of(answer: reader_pb2.GetStatsResponse) -> dict[TableKey, dict[str, float]]:
    return figures_of_json(json_format.MessageToDict(answer, preserving_proto_field_name=True))


def without_age(figures: dict[TableKey, dict[str, float]]) -> dict[TableKey, dict[str, float]]:
    return {k: {n: v for n, v in f.items() if n != AGE} for k, f in figures.items()}


def assert_age_between(
    shown: dict[TableKey, dict[str, float]],
    before: dict[TableKey, dict[str, float]],
    after: dict[TableKey, dict[str, float]],
) -> None:
    """The age of the oldest hot row grows while it stays: what a page shows lies between
    the answers before and after it was read."""
    for key, figures in shown.items():
        assert before[key][AGE] <= figures[AGE] <= after[key][AGE], key


def table_stats(dataset: str, table: str = "battle", **figures: Any) -> TableStats:
    """A table's statistics, zero but for ``figures``."""
    zero: dict[str, Any] = {
        f: 0 for f in TableStats.__dataclass_fields__ if f not in ("dataset_id", "table")
    }
    return TableStats(**{**zero, "dataset_id": dataset, "table": table, **figures})
