-- The seed's monitoring views. hot_cold_summary: where each table's rows are.
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

-- archive_efficiency: compression of each active cold file (uncompressed = the datums as the
-- buffer stored them).
CREATE VIEW fusou_archive_efficiency AS
SELECT f.file_id,
       t.dataset_id,
       t.table_name,
       o.object_key,
       f.codec,
       f.row_count,
       f.byte_length AS stored_bytes,
       f.uncompressed_bytes,
       CASE WHEN f.byte_length > 0
            THEN f.uncompressed_bytes::double precision / f.byte_length
       END AS compression_ratio,
       f.created_at
FROM fusou_files f
JOIN fusou_objects o USING (object_id)
JOIN fusou_tables t USING (table_id)
WHERE o.kind = 'cold' AND f.state = 'active';
