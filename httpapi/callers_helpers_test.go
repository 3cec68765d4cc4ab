package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// The tests' operators: admin (role operator) and carol (role viewer).
const (
	token       = "test-admin-token-0123456789"
	viewerToken = "test-viewer-token-0123456789"
)

var memberSecret = []byte("test-member-secret-of-at-least-32-bytes")

// testCallers is who may call a test's API: the two operators, and members
// with HS256 tokens signed with memberSecret.
func testCallers(t testing.TB) *httpapi.Callers {
	t.Helper()
	h := sha256.Sum256([]byte(viewerToken))
	ops, err := auth.ParseOperators(strings.NewReader("carol:viewer:" + hex.EncodeToString(h[:])))
	require.NoError(t, err)
	require.NoError(t, ops.AddToken(auth.AdminName, auth.RoleOperator, token))
	members, err := auth.NewMembers(context.Background(), auth.MemberOpts{Secret: memberSecret})
	require.NoError(t, err)
	return &httpapi.Callers{Operators: ops, Members: members, Logger: testkit.Logger(t)}
}

// memberBearer is the Authorization header of member id.
func memberBearer(t testing.TB, id int64) string {
	t.Helper()
	tok, err := auth.SignMember(memberSecret, id, time.Hour, "", "", time.Now())
	require.NoError(t, err)
	return "Bearer " + tok
}

// str is a decoded JSON value as a string, "" when absent.
func str(v any) string {
	s, _ := v.(string)
	return s
}
