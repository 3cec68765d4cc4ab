-- What operators read: /metrics and the operator pages.

-- The latest completed run of each reconciliation check (and of each
-- coupon's), read on every metrics scrape: a few index entries instead of
-- every retained run of the kind. Only reconciliation jobs enter it.
-- Built concurrently (the file's only statement, outside a transaction):
-- river_job may hold millions of rows, and a plain build would block every
-- insert, fetch and completion while it scans them.
CREATE INDEX CONCURRENTLY IF NOT EXISTS river_job_reconcile_latest_idx ON river_job (kind, (args ->> 'coupon_code'), finalized_at DESC)
    WHERE state = 'completed' AND kind IN ('coupon_reconcile', 'order_reconcile', 'therapy_stats_verify');
