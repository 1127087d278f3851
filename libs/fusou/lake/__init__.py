"""The open lake: each (dataset, table) published as an Apache Iceberg table that any engine
(pyiceberg, Spark, Trino, Flink, DuckDB) reads exactly as ReadRange would answer for the archived
rows. See ``fusou.lake.publisher`` for how a table is kept in step with the catalog."""
