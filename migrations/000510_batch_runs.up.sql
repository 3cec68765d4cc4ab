-- The batch page and `enqueue runs`: what each batch did on each of the last
-- business dates. The therapy run is found through River's GIN index on args
-- (its jobs carry business_date) and the settlement through
-- river_job_point_settlement_date_idx; the batches whose jobs carry no date
-- are found by when their jobs or rows were created (this index, and
-- order_request's in the next migration).

-- Jobs of the kinds without a date in their args, by creation time. state is
-- included so counting a day's order_submit jobs by state reads the index
-- only; a job's state changes are never HOT updates anyway (River's fetching
-- index holds state). Built concurrently, the file's only statement: a plain
-- build would block river_job's writes while it scans every row.
CREATE INDEX CONCURRENTLY IF NOT EXISTS river_job_batch_created_idx ON river_job (kind, created_at) INCLUDE (state)
    WHERE kind IN ('coupon_reconcile', 'coupon_exchange', 'order_submit');
