package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/store"
)

// cancelParkedReconcile cancels the parked order_reconcile job with the real
// enqueue binary, as the OS user ops, and returns its operator_action id.
func (b *opsBundle) cancelParkedReconcile(t *testing.T) int64 {
	t.Helper()
	code, stdout, stderr := testbin.Run(t, testbin.Build(t, "enqueue"), append(b.env, "USER=ops"),
		"cancel", "--kind", "order_reconcile", "--queue", parkedQueue)
	require.Equal(t, 0, code, stderr)
	var id int64
	_, err := fmt.Sscanf(stdout, "cancelled 1 of 1 matching job(s) (operator_action %d)", &id)
	require.NoError(t, err, stdout)
	return id
}

var actionRow = regexp.MustCompile(`<tr data-action="(\d+)" data-kind="(\w+)" data-via="\w+" data-matched="(\d+)" data-acted="(\d+)">` +
	`<td>\d+</td><td class="time">[^<]*</td><td>\w+</td><td>\w+</td><td><code>([^<]*)</code></td><td>\d+</td><td>\d+</td><td>([^<]*)</td><td>\d*</td>\s*<td class="time">(.*?)</td></tr>`)

// The batch page lists the operator actions, newest first and at most 20,
// each with its filter, counts, user and whether it finished.
func TestBatchPageListsOperatorActions(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	resp, page := b.get(t, "/ui/", basic("admin", b.token))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", page)
	require.Contains(t, string(page), `<p class="none" id="actions-none">No operator action yet.</p>`)

	cancelled := b.cancelParkedReconcile(t)
	resp, page = b.get(t, "/ui/", basic("admin", b.token))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", page)
	rows := actionRow.FindAllSubmatch(page, -1)
	require.Len(t, rows, 1, "%s", page)
	require.Equal(t, []string{fmt.Sprint(cancelled), "cancel", "1", "1",
		"kind=order_reconcile state=available,scheduled,retryable,pending queue=parked", "ops"},
		[]string{string(rows[0][1]), string(rows[0][2]), string(rows[0][3]), string(rows[0][4]), string(rows[0][5]), string(rows[0][6])})
	require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`, string(rows[0][7]), "finished")

	// One stopped half way shows as not finished; only the latest 20 are listed.
	st := store.New(b.pool)
	var latest int64
	for range 20 {
		id, err := st.StartOperatorAction(context.Background(), "retry", json.RawMessage(`{"state": ["discarded"]}`), "")
		require.NoError(t, err)
		latest = id
	}
	_, page = b.get(t, "/ui/", basic("admin", b.token))
	rows = actionRow.FindAllSubmatch(page, -1)
	require.Len(t, rows, 20)
	require.Equal(t, fmt.Sprint(latest), string(rows[0][1]), "newest first")
	require.Equal(t, "state=discarded", string(rows[0][5]))
	require.Contains(t, string(rows[0][7]), "not finished")
	require.NotContains(t, string(page), fmt.Sprintf(`data-action="%d"`, cancelled), "the 21st is not listed")
}
