-- The Archive and Compact calls, newest kept (the dashboard's "recent runs", and the metric of
-- the last successful run per kind); the runs themselves keep no state here.
CREATE TABLE fusou_runs (
    run_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('archive', 'compact')),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    -- ok: every table done; partial: some tables failed, others were done; failed: the call
    -- raised, or every table it tried failed.
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'partial', 'failed')),
    tables          integer NOT NULL DEFAULT 0,  -- tables the run moved rows of
    failed_tables   integer NOT NULL DEFAULT 0,
    rows            bigint NOT NULL DEFAULT 0,   -- rows archived, or rows written by compaction
    bytes           bigint NOT NULL DEFAULT 0,   -- bytes of the files written
    error           text NOT NULL DEFAULT '',
    -- The datasets the run touched or failed on: PurgeDataset removes its dataset from here,
    -- and the error text with it (which may name the dataset).
    datasets        text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX fusou_runs_kind ON fusou_runs (kind, run_id DESC);
