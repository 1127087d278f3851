from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from fusou.config import Settings
from fusou.testing import PostgresForTests, ServicesUnderTest, running_services

# Fixtures that reach a real PostgreSQL or S3 server, directly or through the fixtures they
# depend on: a test using one must carry the ``integration`` marker (see below).
RESOURCE_FIXTURES = frozenset({"postgres", "s3_server", "s3"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when a test reaches PostgreSQL or S3 through a fixture without being marked
    ``integration``: ``-m "not integration"`` (the fast loop) would otherwise run it, or a marker
    left off a new test would go unnoticed. Checked on every run, whatever ``-m`` selects."""
    unmarked = [
        item.nodeid
        for item in items
        if RESOURCE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use PostgreSQL or S3 (fixtures "
            + ", ".join(sorted(RESOURCE_FIXTURES))
            + ") but are not marked `integration`; add "
            "`pytestmark = pytest.mark.integration` to their module:\n  " + "\n  ".join(unmarked)
        )


@pytest.fixture(scope="session")
async def postgres() -> AsyncIterator[PostgresForTests]:
    pg = PostgresForTests()
    await pg.start()
    try:
        yield pg
    finally:
        await pg.stop()


@pytest.fixture
async def database_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    url = await postgres.create_database()
    try:
        yield url
    finally:
        await postgres.drop_database(url)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    objects = tmp_path / "objects"
    objects.mkdir()
    return Settings().replace(database_url=database_url, object_store_url=f"file://{objects}")


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[ServicesUnderTest]:
    async with running_services(settings) as running:
        yield running


@pytest.fixture
async def channel(services: ServicesUnderTest) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(services.target) as ch:
        yield ch


@pytest.fixture
def settings_objects(settings: Settings) -> Path:
    """The local object store's root directory of ``settings``."""
    assert settings.store.url is not None
    return Path(settings.store.url.removeprefix("file://"))
