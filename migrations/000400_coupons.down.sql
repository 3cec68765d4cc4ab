DROP INDEX IF EXISTS river_job_coupon_persist_idx;
DROP TABLE IF EXISTS coupon_notification;
DROP TABLE IF EXISTS failed_coupon_issue;
DROP TABLE IF EXISTS coupon_issue;
DROP TABLE IF EXISTS coupon;
