-- DeleteRows and retention: a deletion hides, from the moment it commits, every stored row of
-- its table with a seq up to max_seq, a time in [start_time, end_time) and values meeting its
-- filters; reads and compaction apply it before the dedup rule, as if those rows had never
-- been written. Compaction rewrites the files it touches; once no active file that was not
-- rewritten under it, and no hot row, could hold such a row, the deletion row goes too.
CREATE TABLE fusou_deletions (
    deletion_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_id        integer NOT NULL REFERENCES fusou_tables (table_id),
    start_time      bigint  NOT NULL,  -- epoch ms, inclusive
    end_time        bigint  NOT NULL,  -- epoch ms, exclusive
    -- A conjunction of conditions, as ReadRange's: [{"column", "op", "values"}].
    filters         jsonb   NOT NULL DEFAULT '[]',
    max_seq         bigint  NOT NULL,
    reason          text    NOT NULL CHECK (reason IN ('delete', 'retention')),
    requested_by    text    NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (start_time < end_time)
);
CREATE INDEX fusou_deletions_table ON fusou_deletions (table_id, start_time);

-- The highest deletion whose rows the file's writer left out (compaction applies every
-- deletion of its table it knows of); 0 for files written as they came (archive, upload).
ALTER TABLE fusou_files ADD COLUMN deletions_applied bigint NOT NULL DEFAULT 0;

-- How long the table keeps rows, by their time (milliseconds; NULL: for ever). Enforced by
-- EnforceRetention runs, which delete the rows older than now minus this.
ALTER TABLE fusou_tables ADD COLUMN retention_ms bigint CHECK (retention_ms > 0);
