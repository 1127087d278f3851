"""What the compaction tests check against, read independently of the code under test: every
active file of the catalog fetched from the object store and decoded by fastavro or pyarrow
directly, the buffer read with SQL, and the store listed."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow.parquet as pq

from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc
from fusou.formats.avro_container import SEQ_FIELD
from fusou.objectstore.base import ObjectStore
from tests.archive.oracle import buffer_seqs, fetch, read_avro

PARTIAL = compactor_pb2.COMPACT_STATUS_PARTIAL
COMPACTED = compactor_pb2.COMPACT_STATUS_COMPACTED
NOTHING_TO_DO = compactor_pb2.COMPACT_STATUS_NOTHING_TO_DO
SKIPPED_BUSY = compactor_pb2.COMPACT_STATUS_SKIPPED_BUSY
FAILED = compactor_pb2.COMPACT_STATUS_FAILED


async def active_file_seqs(url: str, store: ObjectStore) -> Counter[int]:
    """How often each seq occurs in the active files: cold Avro (its seq column), optimized
    Parquet (its seq column) and raw fragments (first_seq plus the row number)."""
    files = await fetch(
        url,
        "SELECT o.object_key, o.kind, f.byte_offset, f.byte_length, f.row_count, f.first_seq "
        "FROM fusou_files f JOIN fusou_objects o USING (object_id) WHERE f.state = 'active'",
    )
    seqs: Counter[int] = Counter()
    for f in files:
        data = await store.get_range(f["object_key"], f["byte_offset"], f["byte_length"])
        if f["kind"] == "cold":
            found = [r[SEQ_FIELD] for r in read_avro(data)]
        elif f["kind"] == "optimized":
            found = pq.read_table(io.BytesIO(data)).column(SEQ_FIELD).to_pylist()
        else:
            rows = pq.read_metadata(io.BytesIO(data)).num_rows
            found = list(range(f["first_seq"], f["first_seq"] + rows))
        assert len(found) == f["row_count"], f"{f['object_key']}: row_count disagrees"
        seqs.update(found)
    return seqs


async def every_seq(url: str, store: ObjectStore) -> Counter[int]:
    """How often each seq occurs across the buffer and the active files."""
    return Counter(await buffer_seqs(url)) + await active_file_seqs(url, store)


async def active_kinds(url: str) -> Counter[str]:
    rows = await fetch(
        url,
        "SELECT o.kind FROM fusou_files f JOIN fusou_objects o USING (object_id) "
        "WHERE f.state = 'active'",
    )
    return Counter(r["kind"] for r in rows)


async def registered(url: str, state: str | None = None) -> set[str]:
    rows = await fetch(
        url,
        "SELECT object_key FROM fusou_objects WHERE $1::text IS NULL OR state = $1",
        state,
    )
    return {r["object_key"] for r in rows}


async def stored(
    store: ObjectStore, prefixes: Sequence[str] = ("raw/", "cold/", "optimized/")
) -> set[str]:
    return {info.key for p in prefixes async for info in store.list(p)}


async def flags(url: str, dataset: str) -> dict[str, Any]:
    rows = await fetch(
        url,
        "SELECT compaction_needed, compaction_in_progress, compaction_claimed_by, "
        "last_compacted_at FROM fusou_datasets WHERE dataset_id = $1",
        dataset,
    )
    return dict(rows[0])


async def compact_until_done(
    stub: compactor_pb2_grpc.CompactorServiceAsyncStub, dataset: str, most_runs: int = 40
) -> list[compactor_pb2.DatasetCompactResult]:
    """Compact ``dataset`` until a run says nothing is left; every run's result."""
    results = []
    for _ in range(most_runs):
        answer = await stub.Compact(compactor_pb2.CompactRequest(dataset_id=dataset))
        (result,) = answer.datasets
        results.append(result)
        if result.status != PARTIAL:
            return results
    raise AssertionError(f"still partial after {most_runs} runs")
