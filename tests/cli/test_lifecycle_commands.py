"""``fusou purge``, ``fusou delete`` and ``fusou retention`` as a person or a CronJob runs
them: a confirmation where data goes for good, a JSON summary, an exit code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from fusou.cli.admin_client import parse_retention
from fusou.cli.input_error import InputError
from fusou.config import Settings
from fusou.testing import ServicesUnderTest, running_services
from tests.support.grpcurl import FUSOU, agrpcurl, arun

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[ServicesUnderTest]:
    async with running_services(settings, ["ingest", "archiver"]) as s:
        yield s


async def _count(url: str, dataset: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM fusou_buffer WHERE table_id IN "
                "(SELECT table_id FROM fusou_tables WHERE dataset_id = $1)",
                dataset,
            )
        )
    finally:
        await conn.close()


async def test_purge_asks_for_confirmation_then_purges_and_reports(
    system: ServicesUnderTest, database_url: str
) -> None:
    rows = [{"timestamp": T0 + i, "v": i} for i in range(25)]
    for dataset in ("gone", "kept"):
        result = await agrpcurl(
            system.target,
            "fusou.ingest.v1.IngestService/Ingest",
            data={"dataset_id": dataset, "table": "battle", "rows": rows},
        )
        assert result.returncode == 0, result.explain()

    unconfirmed = await arun([FUSOU, "purge", "gone", "--target", system.target])
    assert unconfirmed.returncode == 2, unconfirmed.explain()
    assert "--yes" in unconfirmed.stderr
    assert await _count(database_url, "gone") == 25

    done = await arun([FUSOU, "purge", "gone", "--yes", "--target", system.target])
    assert done.returncode == 0, done.explain()
    summary = done.json()
    assert summary["complete"] is True and summary["remaining"] == {}
    assert int(summary["deleted"]["hot_rows"]) == 25
    assert await _count(database_url, "gone") == 0
    assert await _count(database_url, "kept") == 25

    # A refused call (the RPC's own tests cover each refusal) exits 1 with its status.
    unknown = await arun([FUSOU, "purge", "never", "--yes", "--target", system.target])
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr


async def test_delete_asks_for_confirmation_then_deletes_the_range(
    system: ServicesUnderTest, database_url: str
) -> None:
    rows = [{"timestamp": T0 + i, "v": i % 2} for i in range(20)]
    result = await agrpcurl(
        system.target,
        "fusou.ingest.v1.IngestService/Ingest",
        data={"dataset_id": "d", "table": "battle", "rows": rows},
    )
    assert result.returncode == 0, result.explain()
    command = [FUSOU, "delete", "d", "battle", "--from", str(T0), "--to", str(T0 + 10)]
    unconfirmed = await arun([*command, "--target", system.target])
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert await _count(database_url, "d") == 20
    done = await arun([*command, "--yes", "--target", system.target])
    assert done.returncode == 0, done.explain()
    assert int(done.json()["hot_rows_deleted"]) == 10
    assert await _count(database_url, "d") == 10
    # With a condition: recorded, the hot rows wait for compaction (reads hide them at once).
    whole = [FUSOU, "delete", "d", "battle", "--from", str(T0), "--to", str(T0 + 20)]
    filtered = await arun([*whole, "--where", "v = 1", "--yes", "--target", system.target])
    assert filtered.returncode == 0, filtered.explain()
    assert int(filtered.json()["deletion_id"]) > int(done.json()["deletion_id"])


async def test_retention_prints_each_table_and_exits_0(system: ServicesUnderTest) -> None:
    declared = await arun(
        [FUSOU, "declare", "k", "battle", "--retention", "1h", "--target", system.target]
    )
    assert declared.returncode == 0, declared.explain()
    assert declared.json() == {"schema_version": 0, "created": True, "retention": "3600s"}
    rows = [{"timestamp": T0 + i, "v": i} for i in range(5)]
    result = await agrpcurl(
        system.target,
        "fusou.ingest.v1.IngestService/Ingest",
        data={"dataset_id": "k", "table": "battle", "rows": rows},
    )
    assert result.returncode == 0, result.explain()
    done = await arun([FUSOU, "retention", "--target", system.target])
    assert done.returncode == 0, done.explain()
    (table,) = done.json()["tables"]
    assert table["retention"] == "3600s" and int(table["hot_rows_deleted"]) == 5


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("30d", 30 * 86_400_000),
        ("12h", 43_200_000),
        ("90m", 5_400_000),
        ("1.5s", 1500),
        ("7", 7000),
        ("0", 0),
    ],
)
def test_retention_durations(text: str, ms: int) -> None:
    assert parse_retention(text) == ms


@pytest.mark.parametrize("text", ["", "d", "-1d", "inf", "nan", "3w"])
def test_bad_retention_durations(text: str) -> None:
    with pytest.raises(InputError):
        parse_retention(text)
