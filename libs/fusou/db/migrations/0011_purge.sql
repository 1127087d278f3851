-- Purging a dataset (PurgeDataset). While purging is set, nothing new is written to the
-- dataset: writes take the dataset's fence (an advisory transaction lock) shared and refuse
-- when it is set, and the purge takes the fence exclusively to set it and before deleting each
-- table, so no write that passed the check is still uncommitted by then (fusou.catalog.fence).
-- The row goes last, once the purge verified that nothing remains.
ALTER TABLE fusou_datasets ADD COLUMN purging boolean NOT NULL DEFAULT false;

-- The audit trail of purges: who asked, when, and how much went. It holds no data of the
-- dataset, only counts and the ids its tables had (what the verification scans for), so it
-- stays after the dataset is gone. A purge that was interrupted is resumed on the same row.
CREATE TABLE fusou_purges (
    purge_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id      text NOT NULL,
    requested_by    text NOT NULL,
    state           text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    -- How many times a call took this purge up (1 when nothing interrupted it).
    attempts        integer NOT NULL DEFAULT 1,
    table_ids       integer[] NOT NULL DEFAULT '{}',
    -- What was deleted, by kind: hot_rows, quarantined_rows, files, blocks, objects, lake_files,
    -- store_objects, store_bytes, request_ids, tables.
    deleted         jsonb NOT NULL DEFAULT '{}',
    -- What the verification found left, by kind (empty when nothing was).
    remaining       jsonb NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX fusou_purges_running ON fusou_purges (dataset_id) WHERE state = 'running';
CREATE INDEX fusou_purges_dataset ON fusou_purges (dataset_id, started_at);
