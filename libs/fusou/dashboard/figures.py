"""The dashboard's charts, as plotly figures (drawn in the browser by the plotly.js that the
plotly package bundles)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import plotly.graph_objects as go

from fusou.catalog.runs import RunOutcome, RunRecord
from fusou.catalog.stats import TableStats
from fusou.dashboard.rates import SERIES, RatePoint
from fusou.dashboard.snapshot import DatasetState, Snapshot

TIER_COLOURS = {
    "hot": "#d62728",
    "cold": "#1f77b4",
    "raw": "#ff7f0e",
    "optimized": "#2ca02c",
}
OUTCOME_COLOURS = {
    RunOutcome.OK: "#2ca02c",
    RunOutcome.PARTIAL: "#ff7f0e",
    RunOutcome.FAILED: "#d62728",
}


def table_label(t: TableStats) -> str:
    return f"{t.dataset_id}/{t.table}"


def _layout(title: str, **more: object) -> go.Layout:
    return go.Layout(
        title={"text": title},
        margin={"l": 60, "r": 20, "t": 50, "b": 80},
        height=340,
        template="plotly_white",
        **more,
    )


def _tiers(
    tables: list[TableStats],
    title: str,
    unit: str,
    of: Callable[[TableStats], dict[str, int]],
) -> go.Figure:
    labels = [table_label(t) for t in tables]
    by_tier = [of(t) for t in tables]
    figure = go.Figure(layout=_layout(title, barmode="stack", yaxis={"title": {"text": unit}}))
    for tier, colour in TIER_COLOURS.items():
        figure.add_trace(
            go.Bar(name=tier, x=labels, y=[b[tier] for b in by_tier], marker_color=colour)
        )
    return figure


def rows_by_tier(tables: list[TableStats]) -> go.Figure:
    return _tiers(tables, "Rows by tier", "rows", TableStats.rows_by_tier)


def bytes_by_tier(tables: list[TableStats]) -> go.Figure:
    return _tiers(tables, "Bytes by tier", "bytes", TableStats.bytes_by_tier)


def _per_table(
    tables: list[TableStats], title: str, unit: str, values: list[float], colour: str
) -> go.Figure:
    figure = go.Figure(layout=_layout(title, yaxis={"title": {"text": unit}}))
    figure.add_trace(go.Bar(x=[table_label(t) for t in tables], y=values, marker_color=colour))
    return figure


def hot_age(tables: list[TableStats]) -> go.Figure:
    ages = [t.oldest_hot_row_age_s for t in tables]
    return _per_table(tables, "Oldest hot row", "seconds", ages, TIER_COLOURS["hot"])


def compression(tables: list[TableStats]) -> go.Figure:
    ratios = [t.compression_ratio for t in tables]
    title = "Cold compression (uncompressed ÷ stored)"
    return _per_table(tables, title, "ratio", ratios, TIER_COLOURS["cold"])


def backlog(datasets: list[DatasetState]) -> go.Figure:
    figure = go.Figure(
        layout=_layout(
            "Compaction backlog",
            yaxis={"title": {"text": "cold files and raw fragments"}},
        )
    )
    figure.add_trace(
        go.Bar(
            x=[d.flags.dataset_id for d in datasets],
            y=[d.backlog_files for d in datasets],
            marker_color=["#ff7f0e" if d.flags.compaction_needed else "#7f7f7f" for d in datasets],
            hovertext=[
                "flagged: compaction_needed" if d.flags.compaction_needed else "not flagged"
                for d in datasets
            ],
        )
    )
    return figure


def runs(title: str, records: list[RunRecord]) -> go.Figure:
    figure = go.Figure(
        layout=_layout(title, yaxis={"title": {"text": "rows"}, "rangemode": "tozero"})
    )
    for outcome, colour in OUTCOME_COLOURS.items():
        mine = [r for r in records if r.outcome is outcome]
        figure.add_trace(
            go.Scatter(
                name=outcome.value,
                x=[r.finished_at for r in mine],
                y=[r.rows for r in mine],
                mode="markers",
                marker={"color": colour, "size": 10},
                hovertext=[r.error or f"{r.tables} table(s), {r.seconds:.1f} s" for r in mine],
            )
        )
    return figure


def rates(points: list[RatePoint]) -> go.Figure:
    figure = go.Figure(
        layout=_layout("Rates in this process", yaxis={"title": {"text": "per second"}})
    )
    if not points:
        figure.add_annotation(
            text="Rates appear once two samples are taken (every FUSOU_METRICS_INTERVAL_S).",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
    at = [datetime.fromtimestamp(p.at, UTC) for p in points]
    for name in SERIES:
        figure.add_trace(
            go.Scatter(name=name, x=at, y=[p.rates[name] for p in points], mode="lines")
        )
    return figure


def figures(snapshot: Snapshot) -> dict[str, go.Figure]:
    """By the id of the element each is drawn in."""
    drawn = {
        "chart-rows": rows_by_tier(snapshot.tables),
        "chart-bytes": bytes_by_tier(snapshot.tables),
        "chart-age": hot_age(snapshot.tables),
        "chart-compression": compression(snapshot.tables),
        "chart-backlog": backlog(snapshot.datasets),
    }
    if snapshot.archive_runs is not None:
        drawn["chart-archive-runs"] = runs("Archive runs", snapshot.archive_runs)
    if snapshot.compact_runs is not None:
        drawn["chart-compact-runs"] = runs("Compact runs", snapshot.compact_runs)
    if snapshot.rates is not None:
        drawn["chart-rates"] = rates(snapshot.rates)
    return drawn
