package orderapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A request body gives its bytes only while the attempt's context is live.
func TestLiveReaderStopsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	r := &liveReader{ctx: ctx, r: bytes.NewReader([]byte(`{"username":"kim"}`))}
	b := make([]byte, 4)
	n, err := r.Read(b)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	cancel()
	_, err = io.ReadAll(r)
	require.ErrorIs(t, err, context.Canceled)
}

// frozenCtx is the context of an attempt whose worker froze past its
// deadline: the deadline is gone, but nothing has noticed yet (Done has not
// fired).
type frozenCtx struct {
	context.Context
	dl time.Time
}

func (c frozenCtx) Deadline() (time.Time, bool) { return c.dl, true }

// A request of an attempt past its deadline writes nothing to the partner,
// even when its context has not reported done: the connection's write
// deadline is the attempt's.
func TestRequestPastItsDeadlineWritesNothing(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":1}`))
	}))
	defer srv.Close()
	c := New(srv.URL, 5*time.Second, 4)
	_, err := c.Create(context.Background(), OrderRequest{Username: "kim", TotalPrice: 1, AppliedYearMonth: "2026-11"})
	require.NoError(t, err, "a live attempt's POST goes through")
	_, err = c.Create(frozenCtx{Context: context.Background(), dl: time.Now().Add(-time.Second)},
		OrderRequest{Username: "lee", TotalPrice: 1, AppliedYearMonth: "2026-11"})
	require.Error(t, err)
	require.EqualValues(t, 1, got.Load(), "the late POST never reached the partner")
}
