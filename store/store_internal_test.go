package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// A server that answered is never "unavailable"; a connection that could not
// be made, or went away, is.
func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	// A real refused connection, as pgx reports it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, refused := pgx.Connect(context.Background(), "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=2")
	require.Error(t, refused)

	for _, c := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("store: ping: %w", refused), true},
		{&pgconn.PgError{Code: pgerrcode.AdminShutdown}, true},
		{&pgconn.PgError{Code: pgerrcode.CannotConnectNow}, true},
		{&pgconn.PgError{Code: pgerrcode.ConnectionFailure}, true},
		{io.ErrUnexpectedEOF, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("store: commit: %w: %w", ErrCommitUnknown, io.ErrUnexpectedEOF), true},
		{&pgconn.PgError{Code: pgerrcode.UniqueViolation}, false}, // an answer about the data
		{&pgconn.PgError{Code: pgerrcode.SerializationFailure}, false},
		{ErrNotFound, false},
		{errors.New("something else"), false},
		{nil, false},
	} {
		require.Equal(t, c.want, IsUnavailable(c.err), "%v", c.err)
	}
}

// A COMMIT is "outcome unknown" only when it may have reached the server and
// no answer came back.
func TestCommitErr(t *testing.T) {
	t.Parallel()
	lost := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	require.ErrorIs(t, commitErr(lost), ErrCommitUnknown)
	require.ErrorIs(t, commitErr(io.ErrUnexpectedEOF), ErrCommitUnknown)
	require.NotErrorIs(t, commitErr(&pgconn.PgError{Code: pgerrcode.SerializationFailure}), ErrCommitUnknown, "the server answered: rolled back")
	// PgBouncer's answer when the server connection died under the COMMIT,
	// and a backend's when a shutdown or a crash ended it: not a rollback.
	require.ErrorIs(t, commitErr(&pgconn.PgError{Severity: "FATAL", Code: pgerrcode.ProtocolViolation, Message: "server conn crashed?"}), ErrCommitUnknown)
	require.ErrorIs(t, commitErr(&pgconn.PgError{Code: pgerrcode.CrashShutdown}), ErrCommitUnknown)
	require.ErrorIs(t, commitErr(&pgconn.PgError{Code: pgerrcode.AdminShutdown}), ErrCommitUnknown)
	require.NotErrorIs(t, commitErr(pgx.ErrTxCommitRollback), ErrCommitUnknown, "the server answered: rolled back")
	require.NotErrorIs(t, commitErr(pgx.ErrTxClosed), ErrCommitUnknown, "nothing was sent")

	// pgx's "conn closed", from a real connection: it says nothing of
	// whether the COMMIT was sent (see commitErr).
	conn, err := pgconn.Connect(context.Background(), testkit.AdminURL())
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))
	_, closed := conn.Exec(context.Background(), "COMMIT").ReadAll()
	require.ErrorIs(t, closed, pgconn.ErrConnClosed)
	require.True(t, pgconn.SafeToRetry(closed), "pgx calls it safe to retry")
	require.ErrorIs(t, commitErr(closed), ErrCommitUnknown)
	require.True(t, IsUnavailable(commitErr(closed)))
}

// A COMMIT that reached Postgres and committed, whose answer was lost: pgx
// reports it as "conn closed" too, and commitErr must not call it a rollback.
func TestCommitErrAnswerLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testkit.DatabaseURL(t)
	cfg, err := pgconn.ParseConfig(dbURL)
	require.NoError(t, err)
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &answerLostConn{Conn: c}, nil
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE TABLE answer_lost (id int); BEGIN; INSERT INTO answer_lost VALUES (1)").ReadAll()
	require.NoError(t, err)

	_, lost := conn.Exec(ctx, "COMMIT").ReadAll()
	require.Error(t, lost)
	require.ErrorIs(t, commitErr(lost), ErrCommitUnknown, "%v", lost)

	other, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer other.Close(ctx)
	var n int
	require.NoError(t, other.QueryRow(ctx, `SELECT count(*) FROM answer_lost`).Scan(&n))
	require.Equal(t, 1, n, "the COMMIT reached Postgres and committed")
}

// answerLostConn loses every answer once a COMMIT was written.
type answerLostConn struct {
	net.Conn
	sent atomic.Bool
}

func (c *answerLostConn) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("COMMIT")) {
		c.sent.Store(true)
	}
	return c.Conn.Write(p)
}

func (c *answerLostConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.sent.Load() {
		return 0, errors.New("answer lost")
	}
	return n, err
}
