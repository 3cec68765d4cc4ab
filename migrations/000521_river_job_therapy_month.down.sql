DROP INDEX CONCURRENTLY IF EXISTS river_job_therapy_month_idx;
