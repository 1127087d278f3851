"""``fusou lake`` as an analyst runs it, and the README's analysts' section run as written:
the settings it prints open the published tables, in pyiceberg and DuckDB, with ReadRange's
rows."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from fusou.config import Settings
from tests.lake.helpers import readrange_rows
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.support.grpcurl import FUSOU, arun, clean_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000


def _readme_python() -> str:
    section = (ROOT / "README.md").read_text().split("## The open lake (for analysts)", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the analysts' section has one Python example"
    return str(blocks[0])


def _readme_commands() -> list[list[str]]:
    section = (ROOT / "README.md").read_text().split("## The open lake (for analysts)", 1)[1]
    (block,) = re.findall(r"```sh\n(.*?)```", section.split("\n## ", 1)[0], flags=re.DOTALL)
    return [line.split("#")[0].split() for line in block.splitlines() if line.strip()]


@pytest.fixture
async def demo(settings: Settings) -> AsyncIterator[Stubs]:
    """The README's demo table, archived (so published)."""
    async with open_stubs(settings, **SMALL_BLOCKS) as stubs:
        rows = [{"timestamp": T0 + i * 3_600_000, "api_no": i, "hp": 40 + i} for i in range(1, 40)]
        await ingest(stubs.ingest, Oracle(), "demo", "battle", rows)
        await archive(stubs.archiver, stubs.services.clock, "demo", "battle")
        yield stubs


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    assert settings.database.url and settings.store.url
    return clean_env(
        FUSOU_DATABASE_URL=settings.database.url,
        FUSOU_OBJECT_STORE_URL=settings.store.url,
        FUSOU_DATA_DIR=str(tmp_path / "data"),
    )


async def test_the_readme_commands_print_the_settings_and_the_tables(
    demo: Stubs, settings: Settings, tmp_path: Path
) -> None:
    env = _env(settings, tmp_path)
    text, as_json = _readme_commands()
    assert text == ["fusou", "lake"] and as_json == ["fusou", "lake", "--json"]
    printed = await arun([FUSOU, *text[1:]], env=env)
    assert printed.returncode == 0, printed.explain()
    out = printed.stdout
    for expected in (
        "demo.battle  3 days, 39 rows, schema v1",
        "from pyiceberg.catalog.sql import SqlCatalog",
        "spark.sql.catalog.fusou.type jdbc",
        "iceberg.catalog.type=jdbc",
        "iceberg.jdbc-catalog.connection-url=jdbc:postgresql://127.0.0.1:5432/",
        "SELECT * FROM iceberg_scan('file://",
    ):
        assert expected in out, f"{expected!r} not in:\n{out}"
    answer = await arun([FUSOU, *as_json[1:]], env=env)
    assert answer.returncode == 0, answer.explain()
    lake = answer.json()
    assert lake["catalog"] == "fusou" and lake["warehouse"].endswith("/lake")
    (table,) = lake["tables"]
    assert table["identifier"] == "demo.battle" and table["rows"] == 39 and table["days"] == 3
    assert table["metadata_location"].endswith(".metadata.json")


async def test_the_readme_python_example_reads_what_readrange_reads(
    demo: Stubs, settings: Settings, tmp_path: Path
) -> None:
    script = tmp_path / "analyst.py"
    script.write_text(_readme_python())
    ran = await arun([sys.executable, str(script)], env=_env(settings, tmp_path), time_limit=60)
    assert ran.returncode == 0, ran.explain()
    rows = await readrange_rows(demo, "demo", "battle", "timestamp")
    wanted = [dict(r) for r in rows if dict(r)["api_no"] >= 2]
    assert ran.stdout.strip() == str((len(wanted), max(r["hp"] for r in wanted)))


async def test_passwords_print_hidden_unless_asked(
    demo: Stubs, settings: Settings, tmp_path: Path
) -> None:
    env = _env(settings, tmp_path)
    assert settings.database.url is not None
    env["FUSOU_DATABASE_URL"] = settings.database.url.replace("postgres@", "postgres:s3cret@")
    hidden = await arun([FUSOU, "lake", "--json"], env=env)
    assert hidden.returncode == 0, hidden.explain()
    assert "s3cret" not in hidden.stdout and "****" in hidden.stdout
    shown = await arun([FUSOU, "lake", "--json", "--show-secrets"], env=env)
    assert shown.returncode == 0, shown.explain()
    assert shown.json()["spark"]["spark.sql.catalog.fusou.jdbc.password"] == "s3cret"


async def test_without_a_configured_or_running_system_it_says_what_to_set(tmp_path: Path) -> None:
    ran = await arun([FUSOU, "lake"], env=clean_env(FUSOU_DATA_DIR=str(tmp_path)))
    assert ran.returncode == 2
    assert "FUSOU_DATABASE_URL" in ran.stderr and "fusou up" in ran.stderr
    assert ran.stdout == ""


async def test_a_database_without_the_lake_says_so(database_url: str, tmp_path: Path) -> None:
    # A database migrated before the lake existed, by services not restarted since.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP TABLE iceberg_tables")
    finally:
        await conn.close()
    env = clean_env(
        FUSOU_DATABASE_URL=database_url,
        FUSOU_OBJECT_STORE_URL=f"file://{tmp_path}",
        FUSOU_DATA_DIR=str(tmp_path),
    )
    ran = await arun([FUSOU, "lake"], env=env)
    assert ran.returncode == 1
    assert "no lake yet" in ran.stderr and ran.stdout == ""
