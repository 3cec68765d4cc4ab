package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/store"
)

// The JSON of each read endpoint is the API's contract: these are the exact
// bodies clients parse, with every field set and with the optional ones null.
func TestResponseBodies(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 14, 30, 0, 0, time.UTC)
	later := at.Add(90 * time.Second)
	ext, lastErr := int64(77), "partner answered 503"
	cases := []struct {
		name string
		body any
		want string
	}{
		{"therapy statistics", newTherapyStatisticsResponse(store.TherapyStatistics{
			TherapyUserID: 1, Year: 2026, Month: 11, PerformCount: 3, CompletedCount: 2, TotalDurationSeconds: 600,
			ActiveDays: 2, FirstPerformedAt: &at, LastPerformedAt: &later, AggregatedAt: later,
		}), `{"therapyUserId":1,"year":2026,"month":11,"performCount":3,"completedCount":2,"totalDurationSeconds":600,
			"activeDays":2,"firstPerformedAt":"2026-11-30T14:30:00Z","lastPerformedAt":"2026-11-30T14:31:30Z",
			"aggregatedAt":"2026-11-30T14:31:30Z"}`},
		{"therapy statistics, no performs", newTherapyStatisticsResponse(store.TherapyStatistics{
			TherapyUserID: 2, Year: 2026, Month: 11, AggregatedAt: at,
		}), `{"therapyUserId":2,"year":2026,"month":11,"performCount":0,"completedCount":0,"totalDurationSeconds":0,
			"activeDays":0,"firstPerformedAt":null,"lastPerformedAt":null,"aggregatedAt":"2026-11-30T14:30:00Z"}`},
		{"order request, sent", newOrderRequestResponse(store.OrderRequest{
			ID: 5, Username: "tester", TotalPrice: 10000, AppliedYearMonth: "2025-02", Status: order.Applied,
			ExternalOrderID: &ext, ExternalCreatedAt: &at, Attempts: 2, LastError: &lastErr, CreatedAt: at, UpdatedAt: later,
		}), `{"id":5,"username":"tester","totalPrice":10000,"appliedYearMonth":"2025-02","status":"APPLIED",
			"externalOrderId":77,"externalCreatedAt":"2026-11-30T14:30:00Z","attempts":2,"lastError":"partner answered 503",
			"createdAt":"2026-11-30T14:30:00Z","updatedAt":"2026-11-30T14:31:30Z"}`},
		{"order request, pending", newOrderRequestResponse(store.OrderRequest{
			ID: 6, Username: "tester", TotalPrice: 1, AppliedYearMonth: "2025-03", Status: order.Pending, CreatedAt: at, UpdatedAt: at,
		}), `{"id":6,"username":"tester","totalPrice":1,"appliedYearMonth":"2025-03","status":"PENDING",
			"externalOrderId":null,"externalCreatedAt":null,"attempts":0,"lastError":null,
			"createdAt":"2026-11-30T14:30:00Z","updatedAt":"2026-11-30T14:30:00Z"}`},
	}
	for _, tc := range cases {
		got, err := json.Marshal(tc.body)
		require.NoError(t, err, tc.name)
		require.JSONEq(t, tc.want, string(got), tc.name)
	}
}
