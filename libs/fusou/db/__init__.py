"""PostgreSQL access: connection pools, migrations, an embedded server for local runs."""
