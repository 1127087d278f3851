-- The summary counts raw and optimized rows too, and the deletions waiting for compaction
-- (new last columns; the others are unchanged).
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
           coalesce(sum(f.byte_length) FILTER (WHERE o.kind = 'optimized'), 0)::bigint AS optimized_bytes,
           coalesce(sum(f.row_count) FILTER (WHERE o.kind = 'raw'), 0)::bigint AS raw_rows,
           coalesce(sum(f.row_count) FILTER (WHERE o.kind = 'optimized'), 0)::bigint AS optimized_rows
    FROM fusou_files f
    JOIN fusou_objects o USING (object_id)
    WHERE f.state = 'active'
    GROUP BY f.table_id
), quarantined AS (
    SELECT table_id, count(*) AS quarantined_rows
    FROM fusou_quarantine
    GROUP BY table_id
), deletions AS (
    SELECT table_id, count(*) AS pending_deletions
    FROM fusou_deletions
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
       coalesce(q.quarantined_rows, 0) AS quarantined_rows,
       coalesce(f.raw_rows, 0) AS raw_rows,
       coalesce(f.optimized_rows, 0) AS optimized_rows,
       coalesce(d.pending_deletions, 0) AS pending_deletions
FROM fusou_tables t
LEFT JOIN hot h USING (table_id)
LEFT JOIN files f USING (table_id)
LEFT JOIN quarantined q USING (table_id)
LEFT JOIN deletions d USING (table_id);
