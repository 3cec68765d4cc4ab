-- Jobs the enqueue CLI inserted, by kind: a CLI process has no /metrics of
-- its own, so it adds its inserts here and every worker's /metrics reports
-- them (tidemark_enqueue_jobs_inserted_total). Only ever incremented.
CREATE TABLE enqueue_job_inserts (
    kind       text PRIMARY KEY,
    inserted   bigint NOT NULL DEFAULT 0 CHECK (inserted >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
