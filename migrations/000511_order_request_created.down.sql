DROP INDEX CONCURRENTLY IF EXISTS order_request_created_idx;
