-- The buffer is a queue: every Archive deletes what it moved, often most of the table. Left to
-- the default thresholds (20% of the table), the dead rows stay in the (table_id, event_time)
-- index long enough to slow every read's hot-row scan (measured: 15 ms for an empty range over
-- a million archived rows, against 0.5 ms once vacuumed). Vacuum it after far fewer deletes.
ALTER TABLE fusou_buffer SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02
);
