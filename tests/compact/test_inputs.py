"""Choosing a run's inputs within the guardrails."""

from __future__ import annotations

from fusou.compact.inputs import InputFile, select
from fusou.read.files import FileRef


def file(n: int, kind: str, size: int) -> InputFile:
    ref = FileRef(n, f"k{n}", b"", 1, kind != "cold", 0, size, None, None)
    return InputFile(
        ref, n, kind, rows=10, decoded_bytes=size, min_time=n * 10, max_time=n * 10 + 5, blocks=()
    )


def ids(files: list[InputFile]) -> list[int]:
    return [f.ref.file_id for f in files]


def test_new_data_first_within_both_guardrails() -> None:
    found = [file(1, "optimized", 10), file(2, "cold", 30), file(3, "raw", 30), file(4, "raw", 30)]
    assert ids(select(found, max_files=10, max_bytes=100).inputs) == [2, 3, 4, 1]
    by_bytes = select(found, max_files=10, max_bytes=70)
    assert ids(by_bytes.inputs) == [2, 3, 1] and by_bytes.more_remaining
    by_count = select(found, max_files=2, max_bytes=1000)
    assert ids(by_count.inputs) == [2, 3] and by_count.more_remaining


def test_a_new_file_larger_than_the_byte_guardrail_is_taken_alone() -> None:
    chosen = select([file(1, "raw", 500), file(2, "raw", 10)], max_files=10, max_bytes=100)
    assert ids(chosen.inputs) == [1] and chosen.more_remaining


def test_optimized_files_are_rewritten_only_where_they_fit() -> None:
    # A lone optimized file is compacted already.
    assert select([file(1, "optimized", 10)], 10, 100).inputs == []
    # Two that fit together are merged; one that does not fit is never forced in.
    pair = select([file(1, "optimized", 40), file(2, "optimized", 50)], 10, 100)
    assert ids(pair.inputs) == [1, 2] and not pair.more_remaining
    too_big = select([file(1, "optimized", 60), file(2, "optimized", 50)], 10, 100)
    assert too_big.inputs == [] and not too_big.more_remaining
    # New data fills the budget: the optimized file waits instead of going over it.
    full = select([file(1, "optimized", 90), file(2, "raw", 90)], 10, 100)
    assert ids(full.inputs) == [2] and not full.more_remaining
