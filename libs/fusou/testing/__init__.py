"""A testing environment shipped with the package: real PostgreSQL databases created per test
from a migrated template, and the services running in-process on an ephemeral port."""

from fusou.testing.postgres import PostgresForTests, database_url_with_name
from fusou.testing.services import ServicesUnderTest, running_services

__all__ = ["PostgresForTests", "ServicesUnderTest", "database_url_with_name", "running_services"]
