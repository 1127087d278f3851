"""Which days of a table need rebuilding: the days each live catalog file spans against the
sources each published day was built from."""

from __future__ import annotations

from collections.abc import Iterable
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
        """Days whose live files are not those their published file was built from."""
        out = set()
        for day in self.days:
            files = self.published.get(day, [])
            if len(files) != 1 or files[0].source_files != self.live.get(day, ()):
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


def digest(rows: pa.Table) -> bytes:
    """What tells one version of a day's rows from another: their seqs, which are unique and
    never reused, in order."""
    seqs = np.sort(rows.column(SEQ_FIELD).to_numpy())
    return xxhash.xxh3_128_digest(seqs.astype(np.int64).tobytes())
