"""One table that cannot be compacted (the bytes of one of its cold files are corrupt in the
store) fails alone: a scheduled Compact still compacts every other dataset and the poisoned
dataset's other tables, reports that table FAILED with the error, sweeps, and keeps the dataset
flagged; a dataset that fails every run does not starve the others.

The oracles are independent of the code under test: reads are checked against what was
ingested or uploaded (tests.read.oracle), files are decoded by fastavro and pyarrow
(tests.compact.oracle), the catalog is read with SQL.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.compactor.v1 import compactor_pb2
from fusou.objectstore.base import ObjectStore
from tests.archive.oracle import exactly_once, fetch
from tests.compact.oracle import COMPACTED, FAILED, NOTHING_TO_DO, every_seq, stored
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, ingest
from tests.read.test_equivalence import READS, battle, read_all
from tests.support.s3server import S3Server, running_s3_server
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DATASETS = {"a": ("battle", "sortie"), "b": ("battle",), "p": ("battle", "sortie")}
POISONED = ("p", "battle")
# Objects no catalog row names: one of the poisoned table's own, one of another dataset.
ORPHANS = ("optimized/p/battle-0000orphan.parquet", "raw/a/0000orphan.bin")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@asynccontextmanager
async def _system(
    settings: Any, store: str, s3: S3Server | None, **more: Any
) -> AsyncIterator[Stubs]:
    """The four services on the local store or on S3, deleting and sweeping without a grace
    period (so every orphan is old enough)."""
    changes: dict[str, Any] = {**SMALL_BLOCKS, "delete_grace_s": 0.0, **more}
    if store == "s3":
        assert s3 is not None
        changes |= {
            "object_store_url": f"s3://{s3.new_bucket()}/prefix",
            "s3_endpoint_url": s3.endpoint_url,
        }
    async with open_stubs(settings, **changes) as stubs:
        yield stubs


async def _load(stubs: Stubs) -> dict[tuple[str, str], Oracle]:
    """Every table: 60 rows ingested and archived (several cold files), then 20 more in one
    raw bundle per dataset (a bundle holds a fragment of each of the dataset's tables)."""
    oracles = {(ds, t): Oracle() for ds, tables in DATASETS.items() for t in tables}
    for (dataset, table), oracle in oracles.items():
        for start in range(0, 60, 20):
            rows = [battle(i) for i in range(start, start + 20)]
            await ingest(stubs.ingest, oracle, dataset, table, rows)
    stubs.services.clock.advance(60)
    archived = await stubs.archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))
    assert archived.failed_tables == 0 and archived.total_rows == 60 * len(oracles)
    for dataset, tables in DATASETS.items():
        fragments = [(t, [battle(i) for i in range(60, 80)]) for t in tables]
        await upload(
            stubs.ingest, stubs.url, dataset, fragments, {t: oracles[(dataset, t)] for t in tables}
        )
    return oracles


async def _active_files(url: str, dataset: str, table: str) -> list[dict[str, Any]]:
    rows = await fetch(
        url,
        "SELECT f.file_id, o.object_key, o.kind, o.state AS object_state "
        "FROM fusou_files f JOIN fusou_objects o USING (object_id) "
        "JOIN fusou_tables t USING (table_id) "
        "WHERE t.dataset_id = $1 AND t.table_name = $2 AND f.state = 'active' ORDER BY f.file_id",
        dataset,
        table,
    )
    return [dict(r) for r in rows]


async def _corrupt_one_cold_file(stubs: Stubs, store: ObjectStore) -> tuple[str, bytes]:
    """Overwrite one of the poisoned table's cold objects with bytes of the same length that
    decode to nothing; its key and its original bytes."""
    cold = [f for f in await _active_files(stubs.url, *POISONED) if f["kind"] == "cold"]
    assert len(cold) >= 2
    key = cold[0]["object_key"]
    original = await store.get(key)
    noise = random.Random(13).randbytes(len(original))
    await store.put(key, noise)
    return key, original


async def _datasets(url: str) -> dict[str, dict[str, Any]]:
    rows = await fetch(
        url,
        "SELECT dataset_id, compaction_needed, compaction_in_progress, last_compacted_at, "
        "last_compaction_attempt_at FROM fusou_datasets",
    )
    return {r["dataset_id"]: dict(r) for r in rows}


def _by_dataset(
    answer: compactor_pb2.CompactResponse,
) -> dict[str, compactor_pb2.DatasetCompactResult]:
    return {d.dataset_id: d for d in answer.datasets}


@pytest.mark.parametrize("store", ["local", "s3"])
async def test_a_table_that_cannot_compact_fails_alone_and_everything_else_compacts(
    settings: Any, s3: S3Server, store: str
) -> None:
    async with _system(settings, store, s3) as stubs:
        url, objects = stubs.url, stubs.services.runtime.store
        oracles = await _load(stubs)
        every_row = {r.seq for o in oracles.values() for r in o.rows}
        key, original = await _corrupt_one_cold_file(stubs, objects)
        poisoned_files = await _active_files(url, *POISONED)
        for orphan in ORPHANS:
            await objects.put(orphan, b"left by a crashed run")

        # The 15-minute CronJob's call: no dataset named.
        answer = await stubs.compactor.Compact(compactor_pb2.CompactRequest())

        datasets = _by_dataset(answer)
        assert set(datasets) == set(DATASETS)
        for name in ("a", "b"):
            assert datasets[name].status == COMPACTED, datasets[name]
            assert {t.table: t.status for t in datasets[name].tables} == {
                t: COMPACTED for t in DATASETS[name]
            }
        p = datasets["p"]
        assert p.status == FAILED and p.error.startswith("table battle: ")
        tables = {t.table: t for t in p.tables}
        assert tables["battle"].status == FAILED and tables["battle"].error
        assert tables["battle"].error in p.error
        assert (tables["battle"].input_files, tables["battle"].output_files) == (0, 0)
        # The poisoned dataset's other table compacted: its cold files and its fragment.
        assert tables["sortie"].status == COMPACTED and tables["sortie"].error == ""
        assert tables["sortie"].input_files >= 3 and tables["sortie"].output_rows == 80

        # The failed table is as it was: the same active files, nothing retired.
        assert await _active_files(url, *POISONED) == poisoned_files
        assert {f["kind"] for f in await _active_files(url, "p", "sortie")} == {"optimized"}
        # Its raw bundle stays: battle's fragment in it is still active.
        bundle = [f for f in poisoned_files if f["kind"] == "raw"]
        assert len(bundle) == 1 and bundle[0]["object_state"] == "active"

        # The sweep ran in every dataset, the failed one included.
        assert not set(ORPHANS) & await stored(objects)
        # Every other table reads back as the oracle says.
        for (dataset, table), oracle in oracles.items():
            if (dataset, table) != POISONED:
                await read_all(stubs, oracle, dataset, table, READS, compacted=True)

        # The failed dataset stays flagged; last_compacted_at says it never compacted cleanly.
        flags = await _datasets(url)
        assert flags["p"]["compaction_needed"] is True
        assert flags["p"]["compaction_in_progress"] is False
        assert flags["p"]["last_compacted_at"] is None
        assert flags["p"]["last_compaction_attempt_at"] is not None
        for name in ("a", "b"):
            assert flags[name]["compaction_needed"] is False
            assert flags[name]["last_compacted_at"] is not None

        # The next run takes it again (and only it), and fails the same way.
        again = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
        (p,) = again.datasets
        assert (p.dataset_id, p.status) == ("p", FAILED)
        assert {t.table: t.status for t in p.tables} == {"battle": FAILED, "sortie": NOTHING_TO_DO}

        # Repaired in the store, it compacts; then every row is in exactly one active file
        # and every table reads back as the oracle says.
        await objects.put(key, original)
        repaired = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
        (p,) = repaired.datasets
        assert (p.dataset_id, p.status, p.error) == ("p", COMPACTED, "")
        assert {t.table: t.status for t in p.tables} == {
            "battle": COMPACTED,
            "sortie": NOTHING_TO_DO,
        }
        assert exactly_once(await every_seq(url, objects), every_row) == []
        for (dataset, table), oracle in oracles.items():
            await read_all(stubs, oracle, dataset, table, READS, compacted=True)
        assert (await _datasets(url))["p"]["compaction_needed"] is False


async def test_calls_naming_the_dataset_report_and_naming_the_table_raise(settings: Any) -> None:
    """A call naming the dataset covers its tables: it reports the failed one and compacts the
    others. A call naming the failed table answers its error (never UNKNOWN), changing nothing."""
    async with _system(settings, "local", None) as stubs:
        url, objects = stubs.url, stubs.services.runtime.store
        oracles = await _load(stubs)
        await _corrupt_one_cold_file(stubs, objects)
        before = await _active_files(url, *POISONED)

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.compactor.Compact(
                compactor_pb2.CompactRequest(dataset_id="p", table="battle")
            )
        assert err.value.code() not in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN)
        assert await _active_files(url, *POISONED) == before
        assert (await _datasets(url))["p"]["compaction_in_progress"] is False

        answer = await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id="p"))
        (p,) = answer.datasets
        assert p.status == FAILED
        assert {t.table: t.status for t in p.tables} == {"battle": FAILED, "sortie": COMPACTED}
        assert await _active_files(url, *POISONED) == before
        await read_all(stubs, oracles[("p", "sortie")], "p", "sortie", READS, compacted=True)


async def test_a_dataset_that_fails_every_run_does_not_starve_the_others(settings: Any) -> None:
    """One dataset per run: the one that failed goes behind the others that wait (the order is
    the last attempt, not the last success, which a failing dataset never gets)."""
    async with _system(settings, "local", None, compact_max_datasets_per_run=1) as stubs:
        objects = stubs.services.runtime.store
        oracles: dict[str, Oracle] = {}
        for dataset in ("a0", "b", "c"):  # a0 first by name, and never compacted
            oracles[dataset] = Oracle()
            fragments = [("battle", [battle(i) for i in range(20)])]
            answer = await upload(
                stubs.ingest, stubs.url, dataset, fragments, {"battle": oracles[dataset]}
            )
            if dataset == "a0":
                # Not Parquet any more: every run of a0 fails on it.
                size = len(await objects.get(answer.object_key))
                await objects.put(answer.object_key, bytes(size))

        taken = []
        for _ in range(4):
            (result,) = (await stubs.compactor.Compact(compactor_pb2.CompactRequest())).datasets
            taken.append((result.dataset_id, result.status))
        assert taken == [("a0", FAILED), ("b", COMPACTED), ("c", COMPACTED), ("a0", FAILED)]
        for dataset in ("b", "c"):
            await read_all(stubs, oracles[dataset], dataset, "battle", READS, compacted=True)
