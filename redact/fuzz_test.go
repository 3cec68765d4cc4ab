package redact_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/redact"
)

// A password written into a URL, with any text around it, never survives
// Text: neither as given nor as escaped in the URL. The password may still
// show where the surrounding text holds it too, so the text with the
// password replaced by the mask is the reference.
func FuzzRedactText(f *testing.F) {
	for _, s := range [][6]string{
		{"connect: ", "postgres", "u", "S3cretPW", "127.0.0.1:5432", "/db"},
		{`Post "`, "http", "", "pa%ss", "partner:8090", `/orders": refused`},
		{"", "redis", "", "p@ss/w?rd#1", "r:6379", "/0"},
		{"a://", "postgres", "u", "secret", "h", "/x@y"},
		{"password=", "https", "u:v", "pw pw", "h", "?k=v"},
		{"`", "postgresql", "u", "'quoted'", "[::1]:5432", "`"},
		{"x", "x", "x", "xxxxx", "x", "x"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, prefix, scheme, user, password, host, suffix string) {
		if password == "" || strings.ContainsAny(password, "<>") { // the mask's own characters
			return
		}
		if _, err := url.Parse(scheme + "://h"); err != nil || scheme == "" {
			scheme = "postgres"
		}
		build := func(pw string) string {
			u := url.URL{Scheme: scheme, User: url.UserPassword(user, pw), Host: host}
			return prefix + u.String() + suffix
		}
		out := redact.Text(build(password))
		ref := redact.Text(build(redact.Mask))
		escaped := strings.TrimPrefix(url.UserPassword("", password).String(), ":")
		for _, secret := range []string{password, escaped} {
			if strings.Contains(out, secret) {
				require.Contains(t, ref, secret, "password %q survives in %q", password, out)
			}
		}
	})
}
