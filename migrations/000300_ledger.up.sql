-- A point ledger settled daily by processing date.

-- The transaction ledger (거래원장). process_on is the business date
-- whose run should collect the row; processed_on the date of the run that did.
-- A row is due for the run of date D when process_on <= D and it has not been
-- processed since process_on was last set (processed_on IS NULL OR
-- processed_on < process_on).
CREATE TABLE point_ledger (
    id           bigserial PRIMARY KEY,
    member_id    bigint NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('EARN', 'USE', 'EXPIRE')),
    amount       bigint NOT NULL CHECK (amount > 0),
    occurred_at  timestamptz NOT NULL,
    process_on   date NOT NULL,
    processed_on date,
    ready        boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- process_on defaults to the day after occurred_at's date in BATCH_TZ. A column
-- default cannot see the worker's BATCH_TZ, so tidemark's own insert path
-- (store.InsertLedger) computes it with the configured zone, and this trigger
-- fills it for any other writer that leaves it out, in the zone named by the
-- setting tidemark.batch_tz (ALTER DATABASE … SET tidemark.batch_tz = '…'),
-- else Asia/Seoul, BATCH_TZ's default. NOT NULL is checked after the trigger.
CREATE FUNCTION point_ledger_default_process_on() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.process_on IS NULL THEN
        NEW.process_on := (NEW.occurred_at AT TIME ZONE
            coalesce(nullif(current_setting('tidemark.batch_tz', true), ''), 'Asia/Seoul'))::date + 1;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER point_ledger_process_on BEFORE INSERT ON point_ledger
    FOR EACH ROW EXECUTE FUNCTION point_ledger_default_process_on();

-- Due rows only: settled rows (the millions) leave this index when their
-- processed_on is set, so step 1's keyset scan by id reads due rows alone,
-- however old or many the settled ones are. process_on and ready ride along.
CREATE INDEX point_ledger_due_idx ON point_ledger (id) INCLUDE (process_on, ready)
    WHERE processed_on IS NULL OR processed_on < process_on;

-- The skip rule's lookup: does this member have an EARN row before this USE?
CREATE INDEX point_ledger_member_earn_idx ON point_ledger (member_id, occurred_at)
    WHERE kind = 'EARN';

-- The daily batch table (일배치): one row per ledger row per run date.
-- The primary key makes "a row collected twice for one run date" impossible.
CREATE TABLE daily_batch (
    run_date     date NOT NULL,
    ledger_id    bigint NOT NULL REFERENCES point_ledger,
    member_id    bigint NOT NULL,
    kind         text NOT NULL,
    amount       bigint NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    job_id       bigint NOT NULL, -- the point_settlement job (run) that collected it
    PRIMARY KEY (run_date, ledger_id)
);

-- One settlement per run date, recomputed from daily_batch by step 2.
CREATE TABLE point_daily_settlement (
    run_date   date PRIMARY KEY,
    earned     bigint NOT NULL,
    used       bigint NOT NULL,
    expired    bigint NOT NULL,
    item_count int NOT NULL,
    settled_at timestamptz NOT NULL,
    job_id     bigint NOT NULL, -- the run that settled it last
    run        int NOT NULL     -- that run's number for the date (1, then reruns)
);

-- Rows the worker refused (skip policy), kept for audit. A skipped row is
-- marked processed; fix it and `enqueue reprocess` it to have it collected.
CREATE TABLE settlement_skip (
    run_date   date NOT NULL,
    ledger_id  bigint NOT NULL REFERENCES point_ledger,
    reason     text NOT NULL,
    job_id     bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_date, ledger_id)
);

-- Finding a date's runs (identity checks) without scanning every job.
CREATE INDEX river_job_point_settlement_date_idx ON river_job ((args ->> 'run_date'))
    WHERE kind = 'point_settlement';

-- Spring Batch's BATCH_JOB_EXECUTION, over River's own job table: one row per
-- job of every kind. identifying_params are the args that make a job's
-- identity (its unique args), job_params all of them. status follows Spring
-- Batch: STARTING (queued or waiting to retry), STARTED (running), COMPLETED,
-- FAILED (discarded after its last attempt), STOPPED (cancelled). The counts
-- are those a job records with river.RecordOutput, null where it records none.
CREATE VIEW batch_job_execution AS
SELECT j.id                                   AS job_execution_id,
       j.kind                                 AS job_name,
       CASE j.kind
           WHEN 'point_settlement' THEN jsonb_build_object('run_date', j.args -> 'run_date', 'run', j.args -> 'run')
           WHEN 'point_settlement_daily' THEN jsonb_build_object('business_date', j.args -> 'business_date')
           WHEN 'therapy_daily' THEN jsonb_build_object('business_date', j.args -> 'business_date')
           WHEN 'therapy_stats' THEN jsonb_strip_nulls(jsonb_build_object(
               'therapy_user_id', j.args -> 'therapy_user_id', 'year', j.args -> 'year', 'month', j.args -> 'month',
               'business_date', j.args -> 'business_date', 'recover_id', j.args -> 'recover_id'))
           ELSE j.args
       END                                    AS identifying_params,
       j.args                                 AS job_params,
       CASE
           WHEN j.state = 'completed' THEN 'COMPLETED'
           WHEN j.state = 'running' THEN 'STARTED'
           WHEN j.state = 'discarded' THEN 'FAILED'
           WHEN j.state = 'cancelled' THEN 'STOPPED'
           ELSE 'STARTING'
       END                                    AS status,
       j.state::text                          AS river_state,
       CASE
           WHEN j.state IN ('completed', 'discarded', 'cancelled') THEN upper(j.state::text)
           ELSE 'UNKNOWN'
       END                                    AS exit_code,
       coalesce(j.errors[array_length(j.errors, 1)] ->> 'error', '') AS exit_description,
       j.created_at                           AS create_time,
       j.attempted_at                         AS start_time,
       j.finalized_at                         AS end_time,
       j.attempt                              AS attempts,
       (j.metadata -> 'output' ->> 'read')::bigint      AS read_count,
       (j.metadata -> 'output' ->> 'written')::bigint   AS write_count,
       (j.metadata -> 'output' ->> 'skipped')::bigint   AS skip_count,
       (j.metadata -> 'output' ->> 'not_ready')::bigint AS not_ready_count,
       (j.metadata -> 'output' ->> 'chunks')::bigint    AS commit_count,
       (j.metadata -> 'output' ->> 'rollbacks')::bigint AS rollback_count,
       j.metadata -> 'output'                 AS output
FROM river_job j;
