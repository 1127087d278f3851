"""``fusou upload`` and ``fusou compact`` as a person or the compaction CronJob runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusou.config import Settings
from fusou.testing import ServicesUnderTest, running_services
from tests.support.grpcurl import FUSOU, arun

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[ServicesUnderTest]:
    async with running_services(settings, ["ingest", "compactor", "reader"]) as s:
        yield s


def _parquet(path: Path, first: int, n: int) -> Path:
    pq.write_table(
        pa.table({"timestamp": [T0 + i for i in range(first, first + n)], "v": list(range(n))}),
        path,
    )
    return path


async def test_upload_then_compact(system: ServicesUnderTest, tmp_path: Path) -> None:
    a = _parquet(tmp_path / "a.parquet", 0, 30)
    b = _parquet(tmp_path / "b.parquet", 30, 20)
    sent = await arun(
        [FUSOU, "upload", "u1", f"battle={a}", f"battle={b}", "--target", system.target]
    )
    assert sent.returncode == 0, sent.explain()
    answer = sent.json()
    assert answer["object_key"].startswith("raw/u1/")
    assert [(f["table"], int(f["rows"])) for f in answer["fragments"]] == [
        ("battle", 30),
        ("battle", 20),
    ]

    done = await arun([FUSOU, "compact", "--dataset", "u1", "--target", system.target])
    assert done.returncode == 0, done.explain()
    (dataset,) = done.json()["datasets"]
    assert dataset["status"] == "COMPACT_STATUS_COMPACTED"
    (table,) = dataset["tables"]
    assert (table["table"], int(table["input_files"]), int(table["output_rows"])) == (
        "battle",
        2,
        50,
    )
    # The CronJob's call: the scheduled mode, with nothing left to do.
    scheduled = await arun([FUSOU, "compact", "--target", system.target])
    assert scheduled.returncode == 0, scheduled.explain()
    assert scheduled.json()["datasets"] == []


async def test_a_failed_dataset_makes_the_cronjob_fail(
    system: ServicesUnderTest, tmp_path: Path, settings_objects: Path
) -> None:
    a = _parquet(tmp_path / "a.parquet", 0, 10)
    sent = await arun([FUSOU, "upload", "u1", f"battle={a}", "--target", system.target])
    assert sent.returncode == 0, sent.explain()
    # The bundle vanished from the store: the run cannot read its input.
    (settings_objects / sent.json()["object_key"]).unlink()
    failed = await arun([FUSOU, "compact", "--target", system.target])
    assert failed.returncode == 1, failed.explain()
    (dataset,) = failed.json()["datasets"]
    assert dataset["status"] == "COMPACT_STATUS_FAILED" and dataset["error"]


async def test_bad_command_lines(system: ServicesUnderTest, tmp_path: Path) -> None:
    missing = await arun(
        [FUSOU, "upload", "u1", f"battle={tmp_path / 'no.parquet'}", "--target", system.target]
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr
    shape = await arun([FUSOU, "upload", "u1", "battle", "--target", system.target])
    assert shape.returncode == 2 and "TABLE=FILE" in shape.stderr
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_bytes(b"not parquet")
    refused = await arun(
        [FUSOU, "upload", "u1", f"battle={not_parquet}", "--target", system.target]
    )
    assert refused.returncode == 1 and "INVALID_ARGUMENT" in refused.stderr
    unknown = await arun([FUSOU, "compact", "--dataset", "nope", "--target", system.target])
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr


async def test_a_failed_table_makes_the_cronjob_fail_and_the_others_compact(
    system: ServicesUnderTest, tmp_path: Path, settings_objects: Path
) -> None:
    a = _parquet(tmp_path / "a.parquet", 0, 10)
    b = _parquet(tmp_path / "b.parquet", 10, 10)
    sent = await arun(
        [FUSOU, "upload", "u1", f"battle={a}", "--target", system.target, "--request-id", "a"]
    )
    assert sent.returncode == 0, sent.explain()
    other = await arun(
        [FUSOU, "upload", "u1", f"sortie={b}", "--target", system.target, "--request-id", "b"]
    )
    assert other.returncode == 0, other.explain()
    # battle's bundle is no Parquet any more: that table cannot compact.
    bundle = settings_objects / sent.json()["object_key"]
    bundle.write_bytes(bytes(bundle.stat().st_size))
    failed = await arun([FUSOU, "compact", "--target", system.target])
    assert failed.returncode == 1, failed.explain()
    (dataset,) = failed.json()["datasets"]
    assert dataset["status"] == "COMPACT_STATUS_FAILED"
    tables = {t["table"]: t for t in dataset["tables"]}
    assert tables["battle"]["status"] == "COMPACT_STATUS_FAILED" and tables["battle"]["error"]
    assert tables["sortie"]["status"] == "COMPACT_STATUS_COMPACTED"
    assert int(tables["sortie"]["output_rows"]) == 10
    assert "fusou compact: failed: u1: table battle: " in failed.stderr
    assert "Traceback" not in failed.stderr


async def test_compact_of_an_unknown_table_fails(system: ServicesUnderTest, tmp_path: Path) -> None:
    a = _parquet(tmp_path / "a.parquet", 0, 10)
    sent = await arun([FUSOU, "upload", "u1", f"battle={a}", "--target", system.target])
    assert sent.returncode == 0, sent.explain()
    unknown = await arun(
        [FUSOU, "compact", "--dataset", "u1", "--table", "nosuch", "--target", system.target]
    )
    assert unknown.returncode == 1, unknown.explain()
    assert unknown.stderr.splitlines() == [
        "fusou compact: NOT_FOUND: no table 'nosuch' in dataset 'u1'"
    ], unknown.explain()
    # The failed call let the dataset go: the table that exists compacts.
    done = await arun(
        [FUSOU, "compact", "--dataset", "u1", "--table", "battle", "--target", system.target]
    )
    assert done.returncode == 0, done.explain()
    (dataset,) = done.json()["datasets"]
    assert dataset["status"] == "COMPACT_STATUS_COMPACTED", dataset
