-- The block statistics as jsonb, so that a read takes from them only the columns its filters
-- name. Statistics written under 0009 are dropped (those blocks are fetched, as blocks archived
-- before statistics are), rather than converted: a conversion could meet text jsonb refuses.
ALTER TABLE fusou_blocks ALTER COLUMN column_stats TYPE jsonb USING NULL;
