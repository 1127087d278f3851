-- The open lake: each (dataset, table) published as an Apache Iceberg table.
--
-- The Iceberg catalog lives here, in the two tables of Iceberg's JDBC catalog layout (pyiceberg's
-- SqlCatalog and Java's JdbcCatalog, which Spark, Trino and Flink load, read the same rows).
-- FUSOU creates them rather than letting pyiceberg do it at first use, so that concurrent
-- service starts meet them under the migration lock instead of racing to create them.
CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name                varchar(255) NOT NULL,
    table_namespace             varchar(255) NOT NULL,
    table_name                  varchar(255) NOT NULL,
    metadata_location           varchar(1000),
    previous_metadata_location  varchar(1000),
    iceberg_type                varchar(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name)
);
CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name    varchar(255) NOT NULL,
    namespace       varchar(255) NOT NULL,
    property_key    varchar(255) NOT NULL,
    property_value  varchar(1000) NOT NULL,
    PRIMARY KEY (catalog_name, namespace, property_key)
);

-- The lake's data files: one Parquet file per table and UTC day, written by FUSOU from the
-- table's live files. A row is inserted (written) before its file is named by an Iceberg
-- commit, so a crash leaves no file FUSOU does not know of; the Iceberg snapshot decides
-- whether a written file was published. source_files are the fusou_files the day was built
-- from, and digest the seqs of the rows it holds: a day is rebuilt when its sources change,
-- and its file replaced when its rows do. A day that live files reach but that holds no row
-- (a gap inside a file's time range, every row superseded by versions on other days) is a
-- row without an object (object_key and location NULL), so that it is not read again until
-- its sources change.
CREATE TABLE fusou_lake_files (
    lake_file_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_id        integer NOT NULL REFERENCES fusou_tables (table_id),
    day             integer NOT NULL,  -- days since 1970-01-01, UTC
    object_key      text UNIQUE,
    location        text,  -- the URI Iceberg names the file by
    source_files    bigint[] NOT NULL,
    row_count       bigint NOT NULL,
    digest          bytea NOT NULL,
    state           text NOT NULL DEFAULT 'written'
                    CHECK (state IN ('written', 'published', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      bigint  -- epoch ms of FUSOU's clock
);
CREATE INDEX fusou_lake_files_table ON fusou_lake_files (table_id) WHERE state <> 'retired';
CREATE INDEX fusou_lake_files_retired ON fusou_lake_files (retired_at) WHERE state = 'retired';

-- Which schema version each table's Iceberg table was last brought to, and the metadata file
-- FUSOU last left it at: a catalog that names another one (a commit by someone else, a table
-- dropped by hand) sends the next run to the snapshot to set it right.
CREATE TABLE fusou_lake_tables (
    table_id            integer PRIMARY KEY REFERENCES fusou_tables (table_id),
    schema_version      integer NOT NULL,
    metadata_location   text NOT NULL,
    published_at        timestamptz NOT NULL DEFAULT now()
);
