"""Which days of a table need rebuilding: the days each live catalog file spans against the
sources each published day was built from."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import xxhash

from fusou.formats.avro_container import SEQ_FIELD
from fusou.lake.ledger import LakeFile, LiveFile
from fusou.storage.partitions import DAY_MS


@dataclass
class DayPlan:
    # day -> the ids of the live files whose rows reach into it
    live: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # day -> the published files holding it (one, unless something went wrong)
    published: dict[int, list[LakeFile]] = field(default_factory=dict)

    @classmethod
    def of(cls, live: Iterable[LiveFile], published: Iterable[LakeFile]) -> DayPlan:
        by_day: dict[int, list[int]] = {}
        for f in live:
            for day in range(f.first_day, f.last_day + 1):
                by_day.setdefault(day, []).append(f.file_id)
        plan = cls({d: tuple(sorted(ids)) for d, ids in by_day.items()})
        for p in published:
            plan.published.setdefault(p.day, []).append(p)
        return plan

    @property
    def days(self) -> set[int]:
        return set(self.live) | set(self.published)

    def stale(self) -> set[int]:
        """Days whose live files are not those their published files were built from."""
        out = set()
        for day in self.days:
            files = self.published.get(day, [])
            live = self.live.get(day, ())
            if not files or any(
                f.source_files != live or f.digest != files[0].digest for f in files
            ):
                out.add(day)
        return out


def split_by_day(rows: pa.Table, time_field: str, days: Iterable[int]) -> dict[int, pa.Table]:
    """The rows (in time order) of each of ``days``."""
    times = rows.column(time_field).to_numpy()
    out = {}
    for day in days:
        lo, hi = np.searchsorted(times, [day * DAY_MS, (day + 1) * DAY_MS])
        out[day] = rows.slice(int(lo), int(hi - lo))
    return out


def digest(parts: Sequence[pa.Table]) -> bytes:
    """What tells one version of a day's rows from another: their seqs, which are unique and
    never reused, in order."""
    columns = [p.column(SEQ_FIELD).to_numpy() for p in parts]
    seqs = np.sort(np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64))
    return xxhash.xxh3_128_digest(seqs.astype(np.int64).tobytes())


def day_slices(
    blocks: Sequence[tuple[int, int, int]], day: int, max_rows: int
) -> list[tuple[int, int]]:
    """[start, end) time ranges covering ``day``, each reaching blocks of about ``max_rows``
    rows at most (``blocks``: (min_time, max_time, rows) of the table's live blocks, by
    min_time). Cuts fall on block starts, so rows of one time are never split between slices:
    the dedup of rows sharing a time holds within each. A block crossing a cut is read by both
    slices, each keeping its own rows."""
    start, end = day * DAY_MS, (day + 1) * DAY_MS
    cuts = [start]
    held = 0
    for first, last, rows in blocks:
        if first >= end:
            break
        if last < start:
            continue
        if held and held + rows > max_rows and first > cuts[-1]:
            cuts.append(first)
            held = 0
        held += rows
    return list(itertools.pairwise([*cuts, end]))
