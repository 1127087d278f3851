-- Retiring a compaction's inputs asks, per object, whether any of its files is still active,
-- and deleting retired objects finds their files: both by object. (The foreign key alone has
-- no index on this side.) The table's active files are already indexed by fusou_files_table_time.
CREATE INDEX fusou_files_object ON fusou_files (object_id);
DROP INDEX fusou_files_table_active;
