"""Fetching blocks with ranged GETs: nearby ranges of one object become one request, and
requests run in parallel under a bound."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from fusou.objectstore.base import ObjectStore


@dataclass(frozen=True)
class Span:
    """A byte range of an object."""

    key: str
    offset: int
    length: int


@dataclass
class FetchStats:
    gets: int = 0
    bytes: int = 0


def coalesce(
    spans: Sequence[Span], max_gap: int, max_request: int
) -> list[tuple[Span, list[Span]]]:
    """Group spans of one object whose gaps are at most ``max_gap`` into requests of at most
    ``max_request`` bytes (a single larger span is its own request)."""
    requests: list[tuple[Span, list[Span]]] = []
    by_key: dict[str, list[Span]] = {}
    for s in spans:
        by_key.setdefault(s.key, []).append(s)
    for key, items in by_key.items():
        items.sort(key=lambda s: s.offset)
        group = [items[0]]
        start, end = items[0].offset, items[0].offset + items[0].length
        for s in items[1:]:
            s_end = s.offset + s.length
            if s.offset - end <= max_gap and max(end, s_end) - start <= max_request:
                group.append(s)
                end = max(end, s_end)
            else:
                requests.append((Span(key, start, end - start), group))
                group, start, end = [s], s.offset, s_end
        requests.append((Span(key, start, end - start), group))
    return requests


async def fetch_spans(
    store: ObjectStore,
    spans: Sequence[Span],
    *,
    max_gap: int,
    max_request: int,
    concurrency: int,
    stats: FetchStats,
) -> dict[Span, bytes]:
    """The bytes of every span; missing objects raise the store's ObjectNotFound."""
    requests = coalesce(spans, max_gap, max_request)
    limit = asyncio.Semaphore(concurrency)
    out: dict[Span, bytes] = {}

    async def one(request: Span, members: list[Span]) -> None:
        async with limit:
            data = await store.get_range(request.key, request.offset, request.length)
        stats.gets += 1
        stats.bytes += len(data)
        for m in members:
            start = m.offset - request.offset
            out[m] = data[start : start + m.length]

    try:
        async with asyncio.TaskGroup() as group:
            for request, members in requests:
                group.create_task(one(request, members))
    except ExceptionGroup as failed:
        # The first failure is the one to report (the others were cancelled with it).
        raise failed.exceptions[0] from None
    return out
