package auth_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/auth"
)

func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func TestParseOperators(t *testing.T) {
	t.Parallel()
	file := "# who may operate tidemark\n\n" +
		"alice:operator:" + hash("alice-token-0123456789") + "\n" +
		"  bob : viewer : " + strings.ToUpper(hash("bob-token-0123456789")) + "   # on call\n"
	ops, err := auth.ParseOperators(strings.NewReader(file))
	require.NoError(t, err)
	require.Equal(t, 2, ops.Len())
	require.Equal(t, []string{"alice (operator)", "bob (viewer)"}, ops.Names())

	op, ok := ops.ByToken("alice-token-0123456789")
	require.True(t, ok)
	require.Equal(t, auth.Operator{Name: "alice", Role: auth.RoleOperator}, op)
	op, ok = ops.ByBasic("bob", "bob-token-0123456789")
	require.True(t, ok)
	require.Equal(t, auth.Operator{Name: "bob", Role: auth.RoleViewer}, op)

	for _, bad := range [][2]string{
		{"alice", "bob-token-0123456789"}, // bob's token under alice's name
		{"carol", "bob-token-0123456789"},
		{"bob", ""},
		{"bob", "bob-token-012345678"},
	} {
		_, ok := ops.ByBasic(bad[0], bad[1])
		require.False(t, ok, bad)
	}
	for _, bad := range []string{"", "alice", hash("alice-token-0123456789"), "alice-token-0123456789 "} {
		_, ok := ops.ByToken(bad)
		require.False(t, ok, bad)
	}
}

func TestParseOperatorsRefusesNamingTheLine(t *testing.T) {
	t.Parallel()
	h := hash("some-token-0123456789")
	for _, c := range []struct{ file, want string }{
		{"alice:admin:" + h, `line 1: role "admin": want viewer or operator`},
		{"\n\nalice:operator", "line 3: want name:role:sha256, got 2 field(s)"},
		{"alice:operator:" + h + ":x", "line 1: want name:role:sha256, got 4 field(s)"},
		{"alice:operator:abc", `line 1: operator "alice": want the 64 hex digits of the token's SHA-256 (sha256sum), got 3 characters`},
		{"alice:operator:" + strings.Repeat("g", 64), `line 1: operator "alice": the SHA-256 is not hex`},
		{":operator:" + h, `line 1: operator name "": want 1 to 64 letters`},
		{"al ice:operator:" + h, `line 1: operator name "al ice"`},
		{"alice:operator:" + h + "\nalice:viewer:" + hash("other-token-0123456789"), `line 2: operator "alice" is listed twice`},
		{"alice:operator:" + h + "\nbob:viewer:" + h, `line 2: operator "bob" has the same token as "alice"`},
		{strings.Repeat("x", 5000), "a line is longer than 4096 bytes"},
	} {
		_, err := auth.ParseOperators(strings.NewReader(c.file))
		require.Error(t, err, c.file)
		require.Contains(t, err.Error(), c.want)
		require.NotContains(t, err.Error(), h, "an error never quotes a hash")
	}
}

func TestCheckToken(t *testing.T) {
	t.Parallel()
	require.NoError(t, auth.CheckToken("ADMIN_TOKEN", "0123456789abcdef"))
	for _, c := range []struct{ token, want string }{
		{" ", "ADMIN_TOKEN: is only spaces"},
		{"\t \n", "ADMIN_TOKEN: is only spaces"},
		{"", "ADMIN_TOKEN: is only spaces"},
		{"short-secret", "ADMIN_TOKEN: is 12 bytes; want a random token of at least 16 bytes"},
	} {
		err := auth.CheckToken("ADMIN_TOKEN", c.token)
		require.ErrorContains(t, err, c.want)
		if strings.TrimSpace(c.token) != "" {
			require.NotContains(t, err.Error(), c.token, "the token is never quoted")
		}
	}
	var ops auth.Operators
	require.ErrorContains(t, ops.AddToken(auth.AdminName, auth.RoleOperator, "too-short"), "is 9 bytes")
	require.NoError(t, ops.AddToken(auth.AdminName, auth.RoleOperator, "0123456789abcdef"))
}

func TestRoleAllows(t *testing.T) {
	t.Parallel()
	require.True(t, auth.RoleOperator.Allows(auth.RoleViewer))
	require.True(t, auth.RoleOperator.Allows(auth.RoleOperator))
	require.True(t, auth.RoleViewer.Allows(auth.RoleViewer))
	require.False(t, auth.RoleViewer.Allows(auth.RoleOperator))
	require.False(t, auth.Role("admin").Allows(auth.RoleViewer))
}

// FuzzParseOperators: whatever a file holds, the parser answers an error or
// operators whose every token lookup is consistent, and an error never
// quotes a hash the file holds.
func FuzzParseOperators(f *testing.F) {
	f.Add("alice:operator:" + hash("alice-token-0123456789") + "\n# comment\nbob:viewer:" + hash("bob-token-0123456789"))
	f.Add("alice:admin:" + hash("x"))
	f.Add(":::\n#\n\x00:viewer:" + hash("y"))
	f.Fuzz(func(t *testing.T, file string) {
		ops, err := auth.ParseOperators(strings.NewReader(file))
		if err != nil {
			for _, line := range strings.Split(file, "\n") {
				line, _, _ = strings.Cut(line, "#")
				fields := strings.Split(line, ":")
				if len(fields) != 3 {
					continue
				}
				h := strings.TrimSpace(fields[2])
				if len(h) == 64 && !strings.Contains(fields[0]+":"+fields[1], h) {
					require.NotContains(t, err.Error(), h)
				}
			}
			return
		}
		require.LessOrEqual(t, ops.Len(), auth.MaxOperators)
		for _, n := range ops.Names() {
			require.True(t, strings.HasSuffix(n, " (viewer)") || strings.HasSuffix(n, " (operator)"), n)
		}
		_, ok := ops.ByToken("")
		require.False(t, ok)
	})
}
