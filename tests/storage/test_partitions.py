"""Day partitions: the UTC day of a time, before 1970 too."""

from __future__ import annotations

import pytest

from fusou.storage.partitions import DAY_MS, day_name, day_start


@pytest.mark.parametrize(
    ("time_ms", "start", "name"),
    [
        (0, 0, "1970-01-01"),
        (DAY_MS - 1, 0, "1970-01-01"),
        (DAY_MS, DAY_MS, "1970-01-02"),
        (-1, -DAY_MS, "1969-12-31"),
        (-DAY_MS, -DAY_MS, "1969-12-31"),
        (1_700_000_000_000, 1_699_920_000_000, "2023-11-14"),
        (-62_135_596_800_000, -62_135_596_800_000, "0001-01-01"),
    ],
)
def test_day_of_a_time(time_ms: int, start: int, name: str) -> None:
    assert day_start(time_ms) == start
    assert day_name(time_ms) == name
