DROP INDEX IF EXISTS river_job_reconcile_latest_idx;
