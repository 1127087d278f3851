"""``fusou archive`` and ``fusou stats`` as a CronJob or a person runs them."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from fusou.config import Settings
from fusou.testing import ServicesUnderTest, running_services
from tests.archive.poison import LONG_AGO_MS, poison_row
from tests.support.grpcurl import FUSOU, agrpcurl, arun

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[ServicesUnderTest]:
    # The server's own minimum age is an hour; the command overrides it where it needs to.
    async with running_services(settings, ["ingest", "archiver", "reader"]) as s:
        yield s


async def _ingest(target: str, n: int) -> None:
    rows = [{"timestamp": T0 + i, "v": i} for i in range(n)]
    result = await agrpcurl(
        target,
        "fusou.ingest.v1.IngestService/Ingest",
        data={"dataset_id": "u1", "table": "battle", "rows": rows},
    )
    assert result.returncode == 0, result.explain()


async def test_archive_prints_a_json_summary_and_exits_0(
    system: ServicesUnderTest, database_url: str
) -> None:
    await _ingest(system.target, 40)
    young = await arun([FUSOU, "archive", "--target", system.target])
    assert young.returncode == 0, young.explain()
    assert int(young.json()["total_rows"]) == 0
    done = await arun(
        [FUSOU, "archive", "--target", system.target, "--dataset", "u1", "--min-age-seconds", "0"]
    )
    assert done.returncode == 0, done.explain()
    summary = done.json()
    assert int(summary["total_rows"]) == 40
    assert summary["tables"][0]["dataset_id"] == "u1" and int(summary["tables"][0]["rows"]) == 40
    assert float(summary["tables"][0]["compression_ratio"]) > 0
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM fusou_buffer") == 0
    finally:
        await conn.close()
    stats = await arun([FUSOU, "stats", "--target", system.target, "--dataset", "u1"])
    assert stats.returncode == 0, stats.explain()
    table = stats.json()["tables"][0]
    assert (table["table"], int(table["cold_rows"]), int(table["hot_rows"])) == ("battle", 40, 0)


async def test_archive_fails_readably_when_the_call_fails(system: ServicesUnderTest) -> None:
    bad = await arun([FUSOU, "archive", "--target", system.target, "--table", "battle"])
    assert bad.returncode == 1, bad.explain()
    assert "INVALID_ARGUMENT" in bad.stderr and "Traceback" not in bad.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = await arun([FUSOU, "archive", "--target", f"127.0.0.1:{port}", "--timeout", "5"])
    assert down.returncode == 1, down.explain()
    assert "UNAVAILABLE" in down.stderr and "Traceback" not in down.stderr
    assert down.stdout == ""


async def test_a_table_that_failed_makes_the_cronjob_fail_once(
    system: ServicesUnderTest, database_url: str
) -> None:
    """A stored row no cold file can hold: the scheduled command archives everything else,
    prints the table's failure, and exits 1; the next run is clean and exits 0."""
    await _ingest(system.target, 40)
    sortie = await agrpcurl(
        system.target,
        "fusou.ingest.v1.IngestService/Ingest",
        data={"dataset_id": "u2", "table": "sortie", "rows": [{"timestamp": T0, "v": 1}]},
    )
    assert sortie.returncode == 0, sortie.explain()
    conn = await asyncpg.connect(database_url)
    try:
        seq = await conn.fetchval(
            "SELECT min(seq) FROM fusou_buffer JOIN fusou_tables USING (table_id) "
            "WHERE dataset_id = 'u1'"
        )
        await poison_row(database_url, "u1", "battle", seq, LONG_AGO_MS)
    finally:
        await conn.close()
    failed = await arun([FUSOU, "archive", "--target", system.target, "--min-age-seconds", "0"])
    assert failed.returncode == 1, failed.explain()
    summary = failed.json()
    tables = {(t["dataset_id"], t["table"]): t for t in summary["tables"]}
    battle = tables[("u1", "battle")]
    assert battle["status"] == "TABLE_ARCHIVE_STATUS_FAILED"
    assert (int(battle["rows"]), int(battle["rows_quarantined"])) == (39, 1)
    assert "fusou_quarantine" in battle["error"]
    assert tables[("u2", "sortie")]["status"] == "TABLE_ARCHIVE_STATUS_ARCHIVED"
    assert (summary["failed_tables"], int(summary["total_rows_quarantined"])) == (1, 1)
    assert summary["sweep_error"] == ""
    assert "failed: u1/battle: 1 row set aside in fusou_quarantine" in failed.stderr
    assert "Traceback" not in failed.stderr

    await _ingest(system.target, 5)
    clean = await arun([FUSOU, "archive", "--target", system.target, "--min-age-seconds", "0"])
    assert clean.returncode == 0, clean.explain()
    (table,) = clean.json()["tables"]
    assert table["status"] == "TABLE_ARCHIVE_STATUS_ARCHIVED" and table["error"] == ""
    assert clean.json()["failed_tables"] == 0 and "failed" not in clean.stderr


async def test_archive_of_an_unknown_dataset_or_table_fails(system: ServicesUnderTest) -> None:
    """A CronJob whose --dataset or --table is misspelt fails, rather than archiving nothing
    successfully every hour."""
    await _ingest(system.target, 3)
    for args, missing in (
        (["--dataset", "nosuch"], "no dataset 'nosuch'"),
        (["--dataset", "u1", "--table", "nosuch"], "no table 'nosuch' in dataset 'u1'"),
    ):
        failed = await arun(
            [FUSOU, "archive", "--target", system.target, "--min-age-seconds", "0", *args]
        )
        assert failed.returncode == 1, failed.explain()
        assert failed.stderr.splitlines() == [f"fusou archive: NOT_FOUND: {missing}"], (
            failed.explain()
        )
        assert failed.stdout == ""
    # Nothing moved; the names that exist still work.
    exact = ["--dataset", "u1", "--table", "battle"]
    done = await arun(
        [FUSOU, "archive", "--target", system.target, "--min-age-seconds", "0", *exact]
    )
    assert done.returncode == 0, done.explain()
    assert int(done.json()["total_rows"]) == 3


async def test_a_failed_publication_fails_the_command_and_the_next_run_publishes(
    system: ServicesUnderTest, settings_objects: Path
) -> None:
    """The rows are archived either way; the CronJob hears that the lake is behind."""
    await _ingest(system.target, 10)
    # A file where the lake's folder goes: nothing can be written under lake/.
    (settings_objects / "lake").write_text("in the way")
    failed = await arun(
        [FUSOU, "archive", "--target", system.target, "--dataset", "u1", "--min-age-seconds", "0"]
    )
    assert failed.returncode == 1, failed.explain()
    summary = failed.json()
    assert int(summary["total_rows"]) == 10 and summary["failed_tables"] == 0
    assert summary["lake_error"].startswith("u1/battle: ")
    assert "failed: publishing to the lake: u1/battle: " in failed.stderr
    (settings_objects / "lake").unlink()
    again = await arun(
        [FUSOU, "archive", "--target", system.target, "--dataset", "u1", "--min-age-seconds", "0"]
    )
    assert again.returncode == 0, again.explain()
    assert again.json()["lake_tables_published"] == 1 and again.json()["lake_error"] == ""
