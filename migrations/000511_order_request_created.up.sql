-- Order requests by the day they arrived, for the batch page and `enqueue
-- runs`. created_at never changes, so a status update stays a HOT update.
-- Built concurrently, the file's only statement.
CREATE INDEX CONCURRENTLY IF NOT EXISTS order_request_created_idx ON order_request (created_at);
