-- Bulk retries and cancels by filter (`enqueue retry`, `enqueue cancel`),
-- one row per command that changed or tried to change jobs; dry runs write
-- none. The row is inserted before the first batch, and each batch adds its
-- counts in the transaction that retried or cancelled its jobs, so a command
-- stopped half way leaves exactly what it did: matched and acted as of the
-- last committed batch, and no finished_at.
CREATE TABLE operator_action (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL CHECK (action IN ('retry', 'cancel')),
    -- The filter as the command resolved it: the flags given, with the
    -- default states filled in and the time window as instants.
    filter      jsonb NOT NULL CHECK (jsonb_typeof(filter) = 'object'),
    -- Jobs the filter listed, and those River retried or cancelled (a job
    -- that changed between the two, or has a duplicate queued, is not).
    matched     bigint NOT NULL DEFAULT 0 CHECK (matched >= 0),
    acted       bigint NOT NULL DEFAULT 0 CHECK (acted >= 0 AND acted <= matched),
    -- The operator's OS user ($USER), when known.
    by          text CHECK (by <> ''),
    -- Set with the last batch; null while the command runs, or if it was
    -- stopped or failed before it went through every matching job.
    finished_at timestamptz
);
