package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// An orders file is many jobs in one commit: the command leaves river_job
// analysed, so the outbound workers do not fetch them with plans made for an
// empty table (autovacuum is off on the test server).
func TestOrdersCommandAnalysesRiverJob(t *testing.T) {
	t.Parallel()
	pool, dbURL := testkit.Pool(t)
	var csv strings.Builder
	csv.WriteString("username,total_price,applied_year_month\n")
	for i := range 3000 {
		fmt.Fprintf(&csv, "user%d,100,2025-02\n", i)
	}
	file := filepath.Join(t.TempDir(), "orders.csv")
	require.NoError(t, os.WriteFile(file, []byte(csv.String()), 0o600))

	code, stdout, stderr := testbin.Run(t, testbin.Build(t, "enqueue"), []string{"DATABASE_URL=" + dbURL}, "orders", "--file", file)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "inserted 3000 row(s)")
	require.Empty(t, stderr)

	var reltuples float64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT reltuples FROM pg_class WHERE oid = 'river_job'::regclass`).Scan(&reltuples))
	require.Equal(t, float64(3000), reltuples, "the planner counts the file's jobs")
}
