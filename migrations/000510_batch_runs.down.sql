DROP INDEX CONCURRENTLY IF EXISTS river_job_batch_created_idx;
