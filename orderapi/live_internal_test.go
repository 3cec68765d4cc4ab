package orderapi

import (
	"bytes"
	"context"
	"io"
	"testing"

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
