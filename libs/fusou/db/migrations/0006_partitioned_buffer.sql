-- The buffer, hash-partitioned by table: eight partitions, each with its own heap, indexes and
-- autovacuum. Archive deletes a table's old rows: the deletion, the dead index entries and the
-- vacuum that follows touch one partition (an eighth of the buffer on average), and
-- autovacuum workers clean different partitions at once. Every statement on the buffer names
-- its table_id, so it is planned against one partition.
ALTER TABLE fusou_buffer RENAME TO fusou_buffer_unpartitioned;
ALTER INDEX fusou_buffer_table_time RENAME TO fusou_buffer_unpartitioned_table_time;
ALTER TABLE fusou_buffer_unpartitioned RENAME CONSTRAINT fusou_buffer_pkey
    TO fusou_buffer_unpartitioned_pkey;

CREATE TABLE fusou_buffer (
    seq             bigint  NOT NULL,
    table_id        integer NOT NULL,
    event_time      bigint  NOT NULL,  -- epoch milliseconds, the table's time field
    ingested_at     bigint  NOT NULL,  -- epoch milliseconds
    schema_version  integer NOT NULL,
    dedup_key       bytea   NOT NULL,
    record          bytea   NOT NULL,
    -- seq is unique on its own (one sequence hands it out); a partitioned table's key must
    -- hold the partition column.
    PRIMARY KEY (table_id, seq)
) PARTITION BY HASH (table_id);
CREATE TABLE fusou_buffer_p0 PARTITION OF fusou_buffer FOR VALUES WITH (MODULUS 8, REMAINDER 0)
    WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
          autovacuum_analyze_scale_factor = 0.02);
CREATE TABLE fusou_buffer_p1 PARTITION OF fusou_buffer FOR VALUES WITH (MODULUS 8, REMAINDER 1)
    WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
          autovacuum_analyze_scale_factor = 0.02);
CREATE TABLE fusou_buffer_p2 PARTITION OF fusou_buffer FOR VALUES WITH (MODULUS 8, REMAINDER 2)
    WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
          autovacuum_analyze_scale_factor = 0.02);
CREATE TABLE fusou_buffer_p3 PARTITION OF fusou_buffer FOR VALUES WITH (MODULUS 8, REMAINDER 3)
    WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
          autovacuum_analyze_scale_factor = 0.02);
CREATE TABLE fusou_buffer_p4 PARTITION OF fusou_buffer FOR VALUES WITH (MODULUS 8, REMAINDER 4)
    WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
          autovacuum_analyze_scale_factor = 0.02);
CREATE TABLE fusou_buffer_p5 PARTITION OF fusou_buffer FOR VALUES WITH (MODULUS 8, REMAINDER 5)
    WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
          autovacuum_analyze_scale_factor = 0.02);
CREATE TABLE fusou_buffer_p6 PARTITION OF fusou_buffer FOR VALUES WITH (MODULUS 8, REMAINDER 6)
    WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
          autovacuum_analyze_scale_factor = 0.02);
CREATE TABLE fusou_buffer_p7 PARTITION OF fusou_buffer FOR VALUES WITH (MODULUS 8, REMAINDER 7)
    WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
          autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX fusou_buffer_table_time ON fusou_buffer (table_id, event_time);

INSERT INTO fusou_buffer (seq, table_id, event_time, ingested_at, schema_version, dedup_key, record)
SELECT seq, table_id, event_time, ingested_at, schema_version, dedup_key, record
FROM fusou_buffer_unpartitioned;

-- The view read the old table; it is recreated over the new one, unchanged.
DROP VIEW fusou_hot_cold_summary;
DROP TABLE fusou_buffer_unpartitioned;
CREATE VIEW fusou_hot_cold_summary AS
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
       coalesce(f.optimized_bytes, 0) AS optimized_bytes
FROM fusou_tables t
LEFT JOIN hot h USING (table_id)
LEFT JOIN files f USING (table_id);
