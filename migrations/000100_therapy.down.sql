DROP VIEW IF EXISTS therapy_batch_log;
DROP TABLE IF EXISTS therapy_statistics;
DROP TABLE IF EXISTS therapy_perform;
DROP TABLE IF EXISTS therapy_user;
