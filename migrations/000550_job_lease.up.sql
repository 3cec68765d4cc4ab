-- Which attempt owns a job: tidemark's fencing token. River rescues a job
-- whose worker looks dead and runs it again; a worker that was only frozen
-- (GC, VM pause, SIGSTOP) can wake and carry on. Each attempt of a job claims
-- its row here when it starts, a later attempt taking it over; every
-- transaction an attempt writes in reads the row FOR SHARE first and goes on
-- only if it still names the attempt. The claim of a later attempt waits for
-- such a transaction of an earlier one, so none commits after it.
CREATE TABLE job_lease (
    job_id     bigint PRIMARY KEY,
    attempt    integer NOT NULL CHECK (attempt > 0),
    claimed_at timestamptz NOT NULL DEFAULT now()
);
