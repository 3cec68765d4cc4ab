DROP INDEX IF EXISTS order_request_created_idx;
DROP INDEX IF EXISTS river_job_batch_created_idx;
