-- The Archive and Compact calls that did work or failed, newest kept (the dashboard's "recent
-- runs"; the runs themselves are idempotent and keep no state here). Counts only: no dataset
-- names, so a purged dataset leaves nothing behind in this table.
CREATE TABLE fusou_runs (
    run_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('archive', 'compact')),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    -- ok: every table done; partial: some tables failed, the others done; failed: the call
    -- raised (its error below).
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'partial', 'failed')),
    tables          integer NOT NULL DEFAULT 0,  -- tables the run moved rows of
    failed_tables   integer NOT NULL DEFAULT 0,
    rows            bigint NOT NULL DEFAULT 0,   -- rows archived, or rows written by compaction
    bytes           bigint NOT NULL DEFAULT 0,   -- bytes of the files written
    error           text NOT NULL DEFAULT ''
);
CREATE INDEX fusou_runs_kind ON fusou_runs (kind, run_id DESC);
