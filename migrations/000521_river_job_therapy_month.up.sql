-- therapy_batch_log's count for one month reads this index in river_job, as
-- job_archive_therapy_month_idx does in the archive, instead of every
-- therapy_stats job the day's runs left there. Built concurrently, the file's
-- only statement: a plain build would block river_job's writes while it scans.
CREATE INDEX CONCURRENTLY IF NOT EXISTS river_job_therapy_month_idx ON river_job (((args ->> 'year')::int), ((args ->> 'month')::int))
    WHERE kind = 'therapy_stats';
