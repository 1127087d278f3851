-- Raw Parquet fragments carry no sequence numbers of their own: an upload takes a contiguous
-- range of the ingest sequence, row i of a fragment having first_seq + i, so the one dedup
-- rule (highest seq wins) orders uploaded rows against ingested ones. ingested_at is the
-- upload's time, what the buffer would have recorded.
ALTER TABLE fusou_files
    ADD COLUMN first_seq bigint,
    ADD COLUMN ingested_at bigint;

-- A Parquet row group's first row within its file (its rows' seqs start at first_seq plus it).
ALTER TABLE fusou_blocks ADD COLUMN first_row bigint;

-- Idempotent UploadRaw: the first answer to each request_id, replayed for retries.
CREATE TABLE fusou_upload_requests (
    dataset_id  text NOT NULL,
    request_id  text NOT NULL,
    response    bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset_id, request_id)
);

-- What the compactor looks for: a table's active files by kind, and retired objects to delete.
CREATE INDEX fusou_files_table_active ON fusou_files (table_id) WHERE state = 'active';
CREATE INDEX fusou_objects_retired ON fusou_objects (retired_at) WHERE state = 'retired';
CREATE INDEX fusou_datasets_needing_compaction ON fusou_datasets (last_compacted_at)
    WHERE compaction_needed OR compaction_in_progress;
