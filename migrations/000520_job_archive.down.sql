-- The audit views go back to reading river_job alone; the archive and the
-- completed runs are dropped with it.
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
FROM river_job j
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
FROM river_job j;

DROP VIEW job_history;
DROP TRIGGER river_job_archive ON river_job;
DROP FUNCTION tidemark_archive_deleted_jobs();
DROP FUNCTION tidemark_archive_ensure_month(date);
DROP TABLE completed_run;
DROP FUNCTION tidemark_run_identity(text, jsonb);
DROP TABLE job_archive;
