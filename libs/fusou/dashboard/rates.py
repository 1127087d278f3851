"""Rates of this process's counters, sampled on a timer: what the dashboard's rate chart shows
(Prometheus and Grafana have the same counters of every process)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter

from fusou.server import metrics

log = logging.getLogger(__name__)

# Samples kept: at FUSOU_METRICS_INTERVAL_S (15 s by default), an hour.
KEPT_SAMPLES = 240


def _total(counter: Counter, label_filter: Callable[[dict[str, str]], bool] | None = None) -> float:
    return sum(
        sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and (label_filter is None or label_filter(sample.labels))
    )


def _is_read(labels: dict[str, str]) -> bool:
    return labels.get("method", "").endswith(("/ReadRange", "/DoGet"))


# What the chart shows, by its legend: how the counter's total is read.
SERIES: dict[str, Callable[[], float]] = {
    "ingested rows/s": lambda: _total(metrics.INGESTED_ROWS),
    "uploaded rows/s": lambda: _total(metrics.UPLOADED_ROWS),
    "archived rows/s": lambda: _total(metrics.ARCHIVED_ROWS),
    "compacted rows/s": lambda: _total(metrics.COMPACTED_ROWS),
    "reads/s (ReadRange, Flight DoGet)": lambda: _total(metrics.RPCS, _is_read),
}


@dataclass(frozen=True)
class RatePoint:
    at: float  # epoch seconds, the end of the interval
    rates: dict[str, float]


class RateSampler:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=KEPT_SAMPLES + 1)

    def sample(self, now: float | None = None) -> None:
        self._samples.append(
            (time.time() if now is None else now, {k: read() for k, read in SERIES.items()})
        )

    def points(self) -> list[RatePoint]:
        samples = list(self._samples)
        return [
            RatePoint(t1, {k: max(0.0, (v1[k] - v0[k]) / (t1 - t0)) for k in SERIES})
            for (t0, v0), (t1, v1) in itertools.pairwise(samples)
            if t1 > t0
        ]

    async def run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:
                # The chart misses a point; the port and the process go on.
                log.exception("sampling the dashboard's rates failed")
            await asyncio.sleep(self.interval_s)
