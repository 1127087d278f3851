"""The dashboard's rates: differences of this process's counters over the sampling interval."""

from __future__ import annotations

from fusou.dashboard.rates import RateSampler
from fusou.server import metrics


def test_rates_are_counter_increases_per_second() -> None:
    sampler = RateSampler(15.0)
    sampler.sample(now=1000.0)
    metrics.INGESTED_ROWS.inc(30)
    metrics.RPCS.labels("/fusou.reader.v1.ReaderService/ReadRange", "OK").inc(3)
    metrics.RPCS.labels("/arrow.flight.protocol.FlightService/DoGet", "OK").inc(3)
    metrics.RPCS.labels("/fusou.ingest.v1.IngestService/Ingest", "OK").inc(7)
    sampler.sample(now=1015.0)
    (point,) = sampler.points()
    assert point.at == 1015.0
    assert point.rates["ingested rows/s"] == 2.0
    assert point.rates["reads/s (ReadRange, Flight DoGet)"] == 0.4
    assert point.rates["archived rows/s"] == 0.0
