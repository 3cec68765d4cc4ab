DROP TABLE IF EXISTS enqueue_job_inserts;
