"""The dashboard's HTML: exact figures in cells a test or a person can read, and nothing a
stored string holds can become markup or script."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from fusou.catalog.runs import RunKind, RunOutcome, RunRecord
from fusou.catalog.stats import DatasetFlags, TableStats
from fusou.dashboard.page import render
from fusou.dashboard.rates import SERIES, RatePoint
from fusou.dashboard.snapshot import DatasetState, Snapshot

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HOSTILE = '</script><script>alert("x")</script><!--'


def table() -> TableStats:
    return TableStats(
        dataset_id="kancolle",
        table="battle",
        schema_version=2,
        hot_rows=1234567,
        hot_bytes=89,
        oldest_hot_row_age_s=12.345,
        cold_files=3,
        cold_rows=40,
        cold_bytes=50,
        compression_ratio=2.5,
        raw_fragments=1,
        raw_bytes=7,
        optimized_files=2,
        optimized_bytes=60,
        quarantined_rows=0,
        raw_rows=8,
        optimized_rows=90,
        pending_deletions=1,
    )


def snapshot(*, sees_all: bool) -> Snapshot:
    run = RunRecord(
        run_id=1,
        kind=RunKind.ARCHIVE,
        started_at=NOW - timedelta(seconds=3),
        finished_at=NOW,
        outcome=RunOutcome.FAILED,
        tables=0,
        failed_tables=1,
        rows=0,
        bytes=0,
        error=HOSTILE,
    )
    state = DatasetState(DatasetFlags("kancolle", True, False, None, False), 1, 4, 57)
    return Snapshot(
        NOW,
        [table()],
        [state],
        [run] if sees_all else None,
        [] if sees_all else None,
        [RatePoint(NOW.timestamp(), dict.fromkeys(SERIES, 1.0))] if sees_all else None,
    )


def page_of(shown: Snapshot, viewer: str, refresh_s: int) -> str:
    return render(
        shown, prefix="/dashboard", viewer=viewer, refresh_s=refresh_s, title="FUSOU dashboard"
    )


def cells(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-field="(\w+)" data-value="([^"]*)"', page))


def test_cells_carry_the_exact_figures() -> None:
    page = page_of(snapshot(sees_all=True), "root", 30)
    values = cells(page)
    assert values["hot_rows"] == "1234567"
    assert ">1,234,567<" in page
    assert float(values["oldest_hot_row_age_s"]) == 12.345
    assert values["backlog_files"] == "4"
    assert 'data-refresh="30"' in page
    assert "signed in as root" in page


def test_stored_strings_stay_text() -> None:
    page = page_of(snapshot(sees_all=True), '<b>"me"</b>', 0)
    assert HOSTILE not in page
    assert "&lt;/script&gt;&lt;script&gt;alert" in page  # the runs table shows it as text
    assert "&lt;b&gt;&quot;me&quot;&lt;/b&gt;" in page
    # The only scripts are the page's three tags; the figures' JSON holds no markup.
    assert page.count("<script") == 3
    payload = re.search(r'<script type="application/json" id="figures">(.*?)</script>', page, re.S)
    assert payload is not None
    figures = json.loads(payload.group(1))
    assert set(figures) >= {"chart-rows", "chart-archive-runs", "chart-rates"}
    assert HOSTILE in json.dumps(figures["chart-archive-runs"], ensure_ascii=False).replace(
        "\\", ""
    )


def test_a_viewer_of_some_datasets_gets_no_runs_nor_rates() -> None:
    page = page_of(snapshot(sees_all=False), "team", 0)
    assert 'id="runs-hidden"' in page
    assert "chart-archive-runs" not in page and "chart-rates" not in page
    assert 'data-dataset="kancolle" data-table="battle"' in page
