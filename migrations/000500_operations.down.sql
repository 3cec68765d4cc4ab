DROP INDEX CONCURRENTLY IF EXISTS river_job_reconcile_latest_idx;
