-- The fence of a statement that serves many jobs' attempts at once (the
-- therapy aggregation): run first in the statement's transaction, it fails it
-- with SQLSTATE TMST1 unless River still runs every attempt given (a read of
-- river_job, nothing more). A stale attempt's batch then writes nothing.
CREATE FUNCTION tidemark_require_running(job_ids bigint[], attempts int[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM river_job j
        JOIN unnest(job_ids, attempts) AS a(id, attempt) ON j.id = a.id AND j.attempt = a.attempt
        WHERE j.state = 'running') <> cardinality(job_ids) THEN
        RAISE EXCEPTION 'stale attempt: River no longer runs every attempt of this batch'
            USING ERRCODE = 'TMST1';
    END IF;
END
$$;
