-- Per-block column statistics of Avro blocks (null counts, min and max), written at archive so
-- that a filtered read leaves out blocks that cannot match without fetching them. Parquet row
-- groups (raw fragments, compacted files) have theirs in the footer kept in fusou_files.header.
-- Blocks archived before this migration have none and are always fetched.
ALTER TABLE fusou_blocks ADD COLUMN IF NOT EXISTS column_stats bytea;
