"""The per-table series: one label set per table up to the limit, the rest summed into one,
so a scrape's size follows FUSOU_METRICS_TABLE_SERIES, not the number of tables."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fusou.catalog.stats import TableStats
from fusou.server.metrics import OTHER, TableSeries
from tests.support.stats import table_stats


def stats(dataset: str, table: str, hot: int, age: float = 0.0, cold_files: int = 0) -> TableStats:
    return table_stats(
        dataset,
        table,
        hot_rows=hot,
        hot_bytes=hot * 10,
        oldest_hot_row_age_s=age,
        cold_files=cold_files,
    )


def scrape(series: TableSeries) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(series)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_largest_tables_get_series_and_the_rest_one() -> None:
    series = TableSeries()
    tables = [stats("d", f"t{i}", hot=i, age=float(i), cold_files=1) for i in range(10)]
    series.update(tables, 3)
    samples = scrape(series)
    labelled = {
        dict(labels)["table"]
        for name, labels in samples
        if name == "fusou_table_oldest_hot_row_age_seconds"
    }
    assert labelled == {"t9", "t8", "t7", OTHER}
    rest = (("dataset", OTHER), ("table", OTHER))
    assert samples["fusou_table_rows", (*rest, ("tier", "hot"))] == sum(range(7))
    assert samples["fusou_table_bytes", (*rest, ("tier", "hot"))] == 10 * sum(range(7))
    assert samples["fusou_table_oldest_hot_row_age_seconds", rest] == 6.0
    assert samples["fusou_table_compaction_backlog_files", rest] == 7
    # 5 row tiers, 4 byte tiers and 3 single gauges per label set.
    assert len(samples) == 4 * (5 + 4 + 3)

    # A table gone is gone from the next scrape; with every table under the limit, no rest.
    series.update(tables[:2], 3)
    tables_seen = {dict(labels)["table"] for name, labels in scrape(series)}
    assert tables_seen == {"t0", "t1"}


def test_a_limit_of_zero_leaves_one_label_set() -> None:
    series = TableSeries()
    series.update([stats("d", "a", 5), stats("e", "b", 7)], 0)
    assert {dict(labels)["table"] for _, labels in scrape(series)} == {OTHER}
