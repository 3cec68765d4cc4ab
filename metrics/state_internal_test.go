package metrics

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/jobs"
)

// Each check's recorded report, as river.RecordOutput stores it, read back
// as mismatches found and repaired.
func TestMismatchesOfEachReport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind            string
		report          any
		found, repaired int
	}{
		{"coupon_reconcile", jobs.CouponReport{RolledBack: 2, AddedBack: 3}, 5, 5},
		{"coupon_reconcile", jobs.CouponReport{Agrees: false}, 1, 1},
		{"coupon_reconcile", jobs.CouponReport{Agrees: true}, 0, 0},
		{"order_reconcile", jobs.OrderReconcileReport{Repaired: []int64{1, 2}, AppliedMissing: []int64{3},
			IDMismatch: []int64{4}, PriceMismatch: []int64{5}, UnexpectedOrder: []int64{6}, UnknownOrders: 2, Unsent: 9}, 8, 2},
		{"therapy_stats_verify", jobs.TherapyVerifyReport{Checked: 500, Drifted: 4, Reenqueued: 3}, 4, 3},
	} {
		out, err := json.Marshal(tc.report)
		require.NoError(t, err)
		found, repaired, err := mismatches(tc.kind, out)
		require.NoError(t, err)
		require.Equal(t, []int{tc.found, tc.repaired}, []int{found, repaired}, "%s %s", tc.kind, out)
	}
	_, _, err := mismatches("therapy_stats", []byte(`{}`))
	require.Error(t, err)
}
