"""The dashboard's HTML: exact figures in tables (what tests and people read), charts drawn
from the figures embedded as JSON. No inline script: the page's policy allows none."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import plotly.io

from fusou.catalog.runs import RunRecord
from fusou.catalog.stats import TableStats
from fusou.dashboard.figures import figures
from fusou.dashboard.snapshot import DatasetState, Snapshot

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
header { display: flex; align-items: baseline; gap: 1.5em; flex-wrap: wrap; }
h1 { margin: 0; font-size: 1.5em; }
h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1em; }
.muted { color: #777; }
.failed { color: #b00; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _int(field: str, value: int) -> str:
    return f'<td class="n" data-field="{field}" data-value="{value}">{value:,}</td>'


def _float(field: str, value: float, digits: int) -> str:
    return f'<td class="n" data-field="{field}" data-value="{value!r}">{value:,.{digits}f}</td>'


def _text(field: str, value: object) -> str:
    return f'<td data-field="{field}">{_e(value)}</td>'


def _when(at: datetime | None) -> str:
    return "never" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


# The per-table columns: heading, and how a cell is written.
TABLE_COLUMNS: Sequence[tuple[str, Callable[[TableStats], str]]] = (
    ("dataset", lambda t: _text("dataset_id", t.dataset_id)),
    ("table", lambda t: _text("table", t.table)),
    ("schema", lambda t: _int("schema_version", t.schema_version)),
    ("hot rows", lambda t: _int("hot_rows", t.hot_rows)),
    ("hot bytes", lambda t: _int("hot_bytes", t.hot_bytes)),
    ("oldest hot (s)", lambda t: _float("oldest_hot_row_age_s", t.oldest_hot_row_age_s, 1)),
    ("cold files", lambda t: _int("cold_files", t.cold_files)),
    ("cold rows", lambda t: _int("cold_rows", t.cold_rows)),
    ("cold bytes", lambda t: _int("cold_bytes", t.cold_bytes)),
    ("compression", lambda t: _float("compression_ratio", t.compression_ratio, 2)),
    ("raw fragments", lambda t: _int("raw_fragments", t.raw_fragments)),
    ("raw rows", lambda t: _int("raw_rows", t.raw_rows)),
    ("raw bytes", lambda t: _int("raw_bytes", t.raw_bytes)),
    ("optimized files", lambda t: _int("optimized_files", t.optimized_files)),
    ("optimized rows", lambda t: _int("optimized_rows", t.optimized_rows)),
    ("optimized bytes", lambda t: _int("optimized_bytes", t.optimized_bytes)),
    ("quarantined", lambda t: _int("quarantined_rows", t.quarantined_rows)),
    ("pending deletions", lambda t: _int("pending_deletions", t.pending_deletions)),
)

DATASET_COLUMNS: Sequence[tuple[str, Callable[[DatasetState], str]]] = (
    ("dataset", lambda d: _text("dataset_id", d.flags.dataset_id)),
    ("tables", lambda d: _int("tables", d.tables)),
    ("compaction needed", lambda d: _text("compaction_needed", d.flags.compaction_needed)),
    ("compacting", lambda d: _text("compaction_in_progress", d.flags.compaction_in_progress)),
    ("last compacted", lambda d: _text("last_compacted_at", _when(d.flags.last_compacted_at))),
    ("purging", lambda d: _text("purging", d.flags.purging)),
    ("backlog files", lambda d: _int("backlog_files", d.backlog_files)),
    ("backlog bytes", lambda d: _int("backlog_bytes", d.backlog_bytes)),
)

RUN_COLUMNS: Sequence[tuple[str, Callable[[RunRecord], str]]] = (
    ("finished", lambda r: _text("finished_at", _when(r.finished_at))),
    ("outcome", lambda r: _text("outcome", r.outcome.value)),
    ("seconds", lambda r: _float("seconds", r.seconds, 1)),
    ("tables", lambda r: _int("tables", r.tables)),
    ("failed tables", lambda r: _int("failed_tables", r.failed_tables)),
    ("rows", lambda r: _int("rows", r.rows)),
    ("bytes", lambda r: _int("bytes", r.bytes)),
    ("error", lambda r: f'<td class="failed" data-field="error">{_e(r.error)}</td>'),
)


def _table(
    element_id: str,
    columns: Sequence[tuple[str, Callable[[Any], str]]],
    items: Sequence[Any],
    empty: str,
    row_attrs: Callable[[Any], str] = lambda _item: "",
) -> str:
    if not items:
        return f'<p class="muted" id="{element_id}">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(name)}</th>" for name, _ in columns)
    body = "".join(
        f"<tr{row_attrs(item)}>" + "".join(cell(item) for _, cell in columns) + "</tr>"
        for item in items
    )
    return f'<table id="{element_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figures_json(drawn: dict[str, Any]) -> str:
    plain = {key: json.loads(plotly.io.to_json(fig)) for key, fig in drawn.items()}
    # Inside <script>: no "</script>" nor "<!--" may appear, whatever a name holds.
    return json.dumps(plain).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(
    snapshot: Snapshot, *, prefix: str, viewer: str | None, refresh_s: int, title: str
) -> str:
    drawn = figures(snapshot)
    charts = "".join(f'<div id="{key}"></div>' for key in drawn)
    who = (
        '<span class="muted">authentication is off</span>'
        if viewer is None
        else f'<span id="viewer">signed in as {_e(viewer)}</span>'
        f'<form method="post" action="{prefix}/logout"><button>Sign out</button></form>'
    )
    tables = _table(
        "tables",
        TABLE_COLUMNS,
        snapshot.tables,
        "No tables yet.",
        lambda t: f' data-dataset="{_e(t.dataset_id)}" data-table="{_e(t.table)}"',
    )
    datasets = _table(
        "datasets",
        DATASET_COLUMNS,
        snapshot.datasets,
        "No datasets yet.",
        lambda d: f' data-dataset="{_e(d.flags.dataset_id)}"',
    )
    if snapshot.archive_runs is None or snapshot.compact_runs is None:
        runs = (
            '<p class="muted" id="runs-hidden">Runs and rates cover every dataset: they are '
            "shown to tokens of every dataset.</p>"
        )
    else:
        runs = (
            "<h3>Archive</h3>"
            + _table("archive-runs", RUN_COLUMNS, snapshot.archive_runs, "No archive runs yet.")
            + "<h3>Compact</h3>"
            + _table("compact-runs", RUN_COLUMNS, snapshot.compact_runs, "No compact runs yet.")
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>{_e(title)}</title><style>{_STYLE}</style></head>
<body data-refresh="{refresh_s}">
<header><h1>{_e(title)}</h1>
<span id="taken-at" data-value="{snapshot.taken_at.isoformat()}">as of {_when(snapshot.taken_at)}</span>
{who}</header>
<h2>Tables</h2>{tables}
<h2>Charts</h2><div class="charts">{charts}</div>
<h2>Datasets and compaction</h2>{datasets}
<h2>Recent runs</h2>{runs}
<script type="application/json" id="figures">{_figures_json(drawn)}</script>
<script src="{prefix}/plotly.min.js"></script>
<script src="{prefix}/dashboard.js"></script>
</body></html>"""
