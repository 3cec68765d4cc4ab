-- The audit archive: finished jobs outlive River's cleaner.
--
-- River keeps a finished job in river_job for JOB_RETENTION (24 h by
-- default), then its cleaner deletes it. A trigger on that deletion copies
-- every finished job it removes into job_archive in the same statement, so a
-- job is always in exactly one of the two: there is no moment, and no crash,
-- at which it is in neither or both. job_archive is partitioned by month of
-- finalized_at; the archive_maintain job creates months ahead and drops whole
-- months past AUDIT_RETENTION.

CREATE TABLE job_archive (
    id           bigint NOT NULL,
    kind         text NOT NULL,
    queue        text NOT NULL,
    -- River's own enum, so job_history compares and indexes it as river_job does.
    state        river_job_state NOT NULL CHECK (state IN ('completed', 'cancelled', 'discarded')),
    attempt      smallint NOT NULL,
    max_attempts smallint NOT NULL,
    priority     smallint NOT NULL,
    args         jsonb NOT NULL,
    metadata     jsonb NOT NULL,
    errors       jsonb[],
    attempted_by text[],
    tags         varchar(255)[] NOT NULL,
    created_at   timestamptz NOT NULL,
    scheduled_at timestamptz NOT NULL,
    attempted_at timestamptz,
    finalized_at timestamptz NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, finalized_at)
) PARTITION BY RANGE (finalized_at);

-- A row whose month has no partition yet lands here rather than failing
-- River's cleaner; archive_maintain moves such rows into their month.
CREATE TABLE job_archive_default PARTITION OF job_archive DEFAULT;

-- What the audit views, the batch page and the run-identity checks read,
-- mirroring river_job's indexes of the same purpose.
CREATE INDEX job_archive_args_idx ON job_archive USING gin (args jsonb_path_ops);
CREATE INDEX job_archive_kind_finalized_idx ON job_archive (kind, finalized_at);
CREATE INDEX job_archive_kind_created_idx ON job_archive (kind, created_at);
CREATE INDEX job_archive_settlement_date_idx ON job_archive ((args ->> 'run_date')) WHERE kind = 'point_settlement';
CREATE INDEX job_archive_therapy_month_idx ON job_archive (((args ->> 'year')::int), ((args ->> 'month')::int))
    WHERE kind = 'therapy_stats';
CREATE INDEX job_archive_reconcile_latest_idx ON job_archive (kind, (args ->> 'coupon_code'), finalized_at DESC)
    WHERE state = 'completed' AND kind IN ('coupon_reconcile', 'order_reconcile', 'therapy_stats_verify');

-- The identifying parameters of a run that must never run twice without an
-- explicit rerun: the daily runs per business date, the settlement per run
-- date, the exchange job's five parameters. NULL for every other kind. A
-- rerun's args carry "rerun"/"run", which are not part of the identity.
CREATE FUNCTION tidemark_run_identity(kind text, args jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind
        WHEN 'therapy_daily' THEN jsonb_build_object('business_date', args -> 'business_date')
        WHEN 'point_settlement_daily' THEN jsonb_build_object('business_date', args -> 'business_date')
        WHEN 'point_settlement' THEN jsonb_build_object('run_date', args -> 'run_date')
        WHEN 'coupon_exchange' THEN jsonb_build_object(
            'name', args -> 'name', 'description', args -> 'description', 'amount_type', args -> 'amount_type',
            'amount', args -> 'amount', 'expired_coupon_id', args -> 'expired_coupon_id')
    END
$$;

-- Completed runs of those kinds, kept forever (a few rows a day): the
-- archive's months are dropped after AUDIT_RETENTION, a run's identity never.
CREATE TABLE completed_run (
    kind         text NOT NULL,
    identity     jsonb NOT NULL,
    job_id       bigint NOT NULL,
    args         jsonb NOT NULL,
    finalized_at timestamptz NOT NULL,
    PRIMARY KEY (kind, identity, job_id)
);

-- Statement-level, with the deleted rows as a transition table: one insert
-- per cleaner batch, not one per row. Rows that are not finished (River's
-- JobDelete of a queued job) are not archived.
CREATE FUNCTION tidemark_archive_deleted_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_archive (id, kind, queue, state, attempt, max_attempts, priority, args, metadata, errors,
                             attempted_by, tags, created_at, scheduled_at, attempted_at, finalized_at)
    SELECT id, kind, queue, state, attempt, max_attempts, priority, args, metadata, errors,
           attempted_by, tags, created_at, scheduled_at, attempted_at, finalized_at
    FROM deleted_jobs
    WHERE state IN ('completed', 'cancelled', 'discarded');

    INSERT INTO completed_run (kind, identity, job_id, args, finalized_at)
    SELECT kind, tidemark_run_identity(kind, args), id, args, finalized_at
    FROM deleted_jobs
    WHERE state = 'completed' AND tidemark_run_identity(kind, args) IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER river_job_archive AFTER DELETE ON river_job
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION tidemark_archive_deleted_jobs();

-- One month's partition, [month, month + 1). Rows of that month already in
-- the default partition move into it first: a partition cannot be added
-- while the default holds rows of its range.
CREATE FUNCTION tidemark_archive_ensure_month(month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', month)::date::timestamp AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month) + interval '1 month')::date::timestamp AT TIME ZONE 'UTC';
    name text := 'job_archive_' || to_char(date_trunc('month', month), 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE job_archive INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM job_archive_default WHERE finalized_at >= %L AND finalized_at < %L RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE job_archive ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN name;
END
$$;

-- The months the archive starts with: the current one, two back (jobs
-- finalised before this migration are still in river_job and reach the
-- archive when the cleaner deletes them) and two ahead.
SELECT tidemark_archive_ensure_month((date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => m))::date)
FROM generate_series(-2, 2) AS m;

-- Every job, wherever it is now: river_job (queued, running and recently
-- finished) and job_archive (finished earlier). A job is in exactly one.
CREATE VIEW job_history AS
SELECT id, kind, queue, state, attempt, max_attempts, priority, args, metadata, errors, attempted_by, tags,
       created_at, scheduled_at, attempted_at, finalized_at, false AS archived
FROM river_job
UNION ALL
SELECT id, kind, queue, state, attempt, max_attempts, priority, args, metadata, errors, attempted_by, tags,
       created_at, scheduled_at, attempted_at, finalized_at, true AS archived
FROM job_archive;

-- The audit views read both: their answer is the same before and after a
-- job moves.
CREATE OR REPLACE VIEW therapy_batch_log AS
SELECT j.id                                      AS job_id,
       (j.args ->> 'therapy_user_id')::bigint    AS therapy_user_id,
       (j.args ->> 'year')::int                  AS year,
       (j.args ->> 'month')::int                 AS month,
       CASE
           WHEN j.state = 'completed' THEN 'SUCCESS'
           WHEN j.state IN ('discarded', 'cancelled') THEN 'FAIL'
           ELSE 'IN_PROGRESS'
       END                                       AS status,
       j.attempt                                 AS attempts,
       j.attempted_at                            AS started_at,
       j.finalized_at                            AS finished_at,
       j.errors[array_length(j.errors, 1)] ->> 'error' AS last_error,
       coalesce(j.args ->> 'trigger', 'daily')   AS trigger,
       j.created_at                              AS enqueued_at
FROM job_history j
WHERE j.kind = 'therapy_stats';

CREATE OR REPLACE VIEW batch_job_execution AS
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
FROM job_history j;
