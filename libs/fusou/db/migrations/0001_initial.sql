-- Catalog: datasets, tables and their schema versions.
CREATE TABLE fusou_datasets (
    dataset_id              text PRIMARY KEY,
    created_at              timestamptz NOT NULL DEFAULT now(),
    -- Flags of the compaction design: set when new data arrives, claimed by one compactor.
    compaction_needed       boolean NOT NULL DEFAULT false,
    compaction_in_progress  boolean NOT NULL DEFAULT false,
    compaction_claimed_by   text,
    compaction_claim_expires_at timestamptz,
    last_compacted_at       timestamptz
);

CREATE TABLE fusou_tables (
    table_id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id      text NOT NULL REFERENCES fusou_datasets (dataset_id),
    table_name      text NOT NULL,
    time_field      text NOT NULL DEFAULT 'timestamp',
    key_fields      text[] NOT NULL DEFAULT '{}',
    latest_version  integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, table_name)
);

CREATE TABLE fusou_table_schemas (
    table_id    integer NOT NULL REFERENCES fusou_tables (table_id),
    version     integer NOT NULL,
    avro_schema jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_id, version)
);

-- The buffer of hot rows. One row per record; the record is its Avro datum under the row's
-- schema version. seq is the global ingest sequence that decides which duplicate wins.
CREATE SEQUENCE fusou_ingest_seq AS bigint;

CREATE TABLE fusou_buffer (
    seq             bigint  NOT NULL PRIMARY KEY,
    table_id        integer NOT NULL,
    event_time      bigint  NOT NULL,  -- epoch milliseconds, the table's time field
    ingested_at     bigint  NOT NULL,  -- epoch milliseconds
    schema_version  integer NOT NULL,
    dedup_key       bytea   NOT NULL,
    record          bytea   NOT NULL
);
CREATE INDEX fusou_buffer_table_time ON fusou_buffer (table_id, event_time);

-- Hands out a contiguous block of n sequence numbers. The sequence is not transactional, so the
-- lock is held only for the two calls, not until the caller commits.
CREATE FUNCTION fusou_allocate_seq(n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    first bigint;
BEGIN
    PERFORM pg_advisory_lock(7239011, 1);
    first := nextval('fusou_ingest_seq');
    IF n > 1 THEN
        PERFORM setval('fusou_ingest_seq', first + n - 1);
    END IF;
    PERFORM pg_advisory_unlock(7239011, 1);
    RETURN first;
EXCEPTION WHEN OTHERS THEN
    PERFORM pg_advisory_unlock(7239011, 1);
    RAISE;
END;
$$;

-- Idempotent ingest: the first answer to each request_id, replayed for retries.
CREATE TABLE fusou_ingest_requests (
    dataset_id  text NOT NULL,
    request_id  text NOT NULL,
    response    bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset_id, request_id)
);

-- Objects in the object store and the readable files inside them.
CREATE TABLE fusou_objects (
    object_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id   text NOT NULL REFERENCES fusou_datasets (dataset_id),
    object_key   text NOT NULL UNIQUE,
    kind         text NOT NULL CHECK (kind IN ('raw', 'cold', 'optimized')),
    size_bytes   bigint NOT NULL,
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz
);

-- A file is what one reader decodes: an Avro container, a Parquet file, or one Parquet fragment
-- of a raw bundle (then byte_offset/byte_length locate it inside the object).
CREATE TABLE fusou_files (
    file_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_id       bigint NOT NULL REFERENCES fusou_objects (object_id),
    table_id        integer NOT NULL REFERENCES fusou_tables (table_id),
    format          text NOT NULL CHECK (format IN ('avro', 'parquet')),
    byte_offset     bigint NOT NULL DEFAULT 0,
    byte_length     bigint NOT NULL,
    row_count       bigint NOT NULL,
    uncompressed_bytes bigint NOT NULL DEFAULT 0,
    min_time        bigint,
    max_time        bigint,
    schema_version  integer,
    codec           text,
    -- What a reader needs to decode one block alone: the Avro header, or the Parquet footer.
    header          bytea,
    state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz
);
CREATE INDEX fusou_files_table_time ON fusou_files (table_id, min_time, max_time)
    WHERE state = 'active';

-- The block index: Avro blocks or Parquet row groups, by absolute byte range in the object.
CREATE TABLE fusou_blocks (
    file_id      bigint NOT NULL REFERENCES fusou_files (file_id),
    block_no     integer NOT NULL,
    byte_offset  bigint NOT NULL,
    byte_length  bigint NOT NULL,
    row_count    bigint NOT NULL,
    min_time     bigint NOT NULL,
    max_time     bigint NOT NULL,
    PRIMARY KEY (file_id, block_no)
);
