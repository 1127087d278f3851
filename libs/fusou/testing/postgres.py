"""PostgreSQL for tests: ``FUSOU_TEST_DATABASE_URL`` when set, otherwise a private server.

Each test gets a fresh database cloned from a template that already holds the migrations, so
tests never see what another test (or an earlier run) left behind, and cloning costs
milliseconds instead of a migration run.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from fusou.db.embedded import EmbeddedPostgres
from fusou.db.migrate import migrate


def database_url_with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class PostgresForTests:
    def __init__(self, base_url: str | None = None) -> None:
        self._base_url = base_url or os.environ.get("FUSOU_TEST_DATABASE_URL") or None
        self._embedded: EmbeddedPostgres | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._template: str | None = None
        self._created: list[str] = []
        self.admin_url = ""

    async def start(self) -> None:
        if self._base_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fusou-test-pg-")
            try:
                self._embedded = EmbeddedPostgres(
                    Path(self._tmp.name) / "data",
                    delete_on_stop=True,
                    url_variable="FUSOU_TEST_DATABASE_URL",
                )
                self._base_url = self._embedded.start()
            except BaseException:
                self._tmp.cleanup()
                raise
        self.admin_url = database_url_with_name(self._base_url, "postgres")
        self._template = f"fusou_tmpl_{uuid.uuid4().hex[:12]}"
        await self._execute(f'CREATE DATABASE "{self._template}"')
        conn = await asyncpg.connect(database_url_with_name(self._base_url, self._template))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def create_database(self) -> str:
        """A new migrated database; returns its URL."""
        assert self._template is not None and self._base_url is not None, "call start() first"
        name = f"fusou_test_{uuid.uuid4().hex[:12]}"
        await self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        self._created.append(name)
        return database_url_with_name(self._base_url, name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._created:
            self._created.remove(name)

    async def stop(self) -> None:
        try:
            for name in [*self._created, *([self._template] if self._template else [])]:
                await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            self._created.clear()
            if self._embedded is not None:
                self._embedded.stop()
            if self._tmp is not None:
                self._tmp.cleanup()

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
