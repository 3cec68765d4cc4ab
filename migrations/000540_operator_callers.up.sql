-- Every change an operator makes is recorded here, not only bulk retries
-- and cancels: the API's mutations and River UI's actions (retry, cancel,
-- delete, pause, resume, a queue's settings) too, with who made them.
-- A request is recorded before it is acted on and finished with the answer
-- it got, so a worker that dies in between leaves the row unfinished.
ALTER TABLE operator_action DROP CONSTRAINT operator_action_action_check;
ALTER TABLE operator_action ADD CONSTRAINT operator_action_action_check
    CHECK (action ~ '^[a-z][a-z_]{0,39}$');

-- cli: enqueue (by is the OS user); api: /v1/; riverui: River UI's own API
-- (by is the operator's name for both).
ALTER TABLE operator_action ADD COLUMN via text NOT NULL DEFAULT 'cli'
    CHECK (via IN ('cli', 'api', 'riverui'));
-- The HTTP status answered (api, riverui); null while the request runs.
ALTER TABLE operator_action ADD COLUMN status smallint CHECK (status BETWEEN 100 AND 599);
-- The client address the request came from (api, riverui).
ALTER TABLE operator_action ADD COLUMN addr text CHECK (addr <> '');

COMMENT ON COLUMN operator_action.filter IS
    'what the action was for: the bulk filter as resolved (cli), the request body (api), the job ids or the queue (riverui)';
COMMENT ON COLUMN operator_action.by IS 'the OS user (cli) or the operator''s name (api, riverui)';
