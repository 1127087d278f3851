-- Buffer rows the archiver cannot place (a time outside years 1 to 9999, stored before ingest
-- refused such times), moved here whole by the archiver so that they stop failing every run
-- of their table. Nothing reads them: an operator inspects them, and deletes or restores them
-- (README, "Quarantined rows"). The columns are the buffer's, plus why and when.
CREATE TABLE fusou_quarantine (
    table_id        integer NOT NULL REFERENCES fusou_tables (table_id),
    seq             bigint  NOT NULL,
    event_time      bigint  NOT NULL,
    ingested_at     bigint  NOT NULL,
    schema_version  integer NOT NULL,
    dedup_key       bytea   NOT NULL,
    record          bytea   NOT NULL,
    reason          text    NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_id, seq)
);

-- When a run last gave the dataset back, whatever its outcome. Scheduled compaction takes
-- flagged datasets in this order, so a dataset that fails every run waits its turn behind the
-- others instead of staying at the head of the queue (last_compacted_at moves only on success).
ALTER TABLE fusou_datasets ADD COLUMN last_compaction_attempt_at timestamptz;
UPDATE fusou_datasets SET last_compaction_attempt_at = last_compacted_at;
DROP INDEX fusou_datasets_needing_compaction;
CREATE INDEX fusou_datasets_needing_compaction ON fusou_datasets (last_compaction_attempt_at)
    WHERE compaction_needed OR compaction_in_progress;

-- The summary counts each table's quarantined rows too (a new last column; the others are
-- unchanged).
CREATE OR REPLACE VIEW fusou_hot_cold_summary AS
WITH hot AS (
    SELECT table_id,
           count(*) AS hot_rows,
           sum(length(record))::bigint AS hot_bytes,
           min(ingested_at) AS oldest_hot_ingested_at
    FROM fusou_buffer
    GROUP BY table_id
), files AS (
    SELECT f.table_id,
           count(*) FILTER (WHERE o.kind = 'cold') AS cold_files,
           coalesce(sum(f.row_count) FILTER (WHERE o.kind = 'cold'), 0)::bigint AS cold_rows,
           coalesce(sum(f.byte_length) FILTER (WHERE o.kind = 'cold'), 0)::bigint AS cold_bytes,
           coalesce(sum(f.uncompressed_bytes) FILTER (WHERE o.kind = 'cold'), 0)::bigint AS cold_uncompressed_bytes,
           count(*) FILTER (WHERE o.kind = 'raw') AS raw_fragments,
           coalesce(sum(f.byte_length) FILTER (WHERE o.kind = 'raw'), 0)::bigint AS raw_bytes,
           count(*) FILTER (WHERE o.kind = 'optimized') AS optimized_files,
           coalesce(sum(f.byte_length) FILTER (WHERE o.kind = 'optimized'), 0)::bigint AS optimized_bytes
    FROM fusou_files f
    JOIN fusou_objects o USING (object_id)
    WHERE f.state = 'active'
    GROUP BY f.table_id
), quarantined AS (
    SELECT table_id, count(*) AS quarantined_rows
    FROM fusou_quarantine
    GROUP BY table_id
)
SELECT t.table_id,
       t.dataset_id,
       t.table_name,
       t.latest_version,
       coalesce(h.hot_rows, 0) AS hot_rows,
       coalesce(h.hot_bytes, 0) AS hot_bytes,
       h.oldest_hot_ingested_at,
       coalesce(f.cold_files, 0) AS cold_files,
       coalesce(f.cold_rows, 0) AS cold_rows,
       coalesce(f.cold_bytes, 0) AS cold_bytes,
       coalesce(f.cold_uncompressed_bytes, 0) AS cold_uncompressed_bytes,
       coalesce(f.raw_fragments, 0) AS raw_fragments,
       coalesce(f.raw_bytes, 0) AS raw_bytes,
       coalesce(f.optimized_files, 0) AS optimized_files,
       coalesce(f.optimized_bytes, 0) AS optimized_bytes,
       coalesce(q.quarantined_rows, 0) AS quarantined_rows
FROM fusou_tables t
LEFT JOIN hot h USING (table_id)
LEFT JOIN files f USING (table_id)
LEFT JOIN quarantined q USING (table_id);
