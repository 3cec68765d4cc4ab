DROP VIEW IF EXISTS batch_job_execution;
DROP INDEX IF EXISTS river_job_point_settlement_date_idx;
DROP TABLE IF EXISTS settlement_skip;
DROP TABLE IF EXISTS point_daily_settlement;
DROP TABLE IF EXISTS daily_batch;
DROP TABLE IF EXISTS point_ledger;
DROP FUNCTION IF EXISTS point_ledger_default_process_on();
