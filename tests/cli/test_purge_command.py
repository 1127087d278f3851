"""``fusou purge`` as a person runs it: a confirmation, a JSON summary, an exit code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

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

    again = await arun([FUSOU, "purge", "gone", "--yes", "--target", system.target])
    assert again.returncode == 0, again.explain()
    assert again.json()["already_purged"] is True

    unknown = await arun([FUSOU, "purge", "never", "--yes", "--target", system.target])
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr
