DROP FUNCTION IF EXISTS tidemark_require_running(bigint[], int[]);
