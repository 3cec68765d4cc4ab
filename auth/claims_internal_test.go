package auth

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzStrictClaims: any payload is scanned to an answer without a panic,
// and a JSON object whose registered claims are spelt right, once, with
// numeric dates, passes.
func FuzzStrictClaims(f *testing.F) {
	for _, s := range []string{`{"sub":"1","exp":2}`, `{"Sub":"1"}`, `{"exp":"2"}`, `{"a":{"sub":[1,"}"]},"sub":"1"}`,
		`{"s\u0075b":"1"}`, `{`, `{"a":`, ` { "sub" : "1" , "exp" : 1 } `, `{"sub":"1","sub":"2"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		err := strictClaims("x." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".y")
		var m map[string]json.RawMessage
		if err != nil || json.Unmarshal([]byte(payload), &m) != nil {
			return
		}
		// Passed: what encoding/json reads as a registered claim is the
		// claim under its one spelling.
		for _, name := range registered {
			if v, ok := m[name]; ok && (name == "exp" || name == "nbf" || name == "iat") {
				var n json.Number
				require.NoError(t, json.Unmarshal(v, &n), "%s in %s", name, payload)
			}
		}
	})
}

func TestStrictClaims(t *testing.T) {
	t.Parallel()
	tok := func(p string) string { return "x." + base64.RawURLEncoding.EncodeToString([]byte(p)) + ".y" }
	for p, want := range map[string]string{
		`{"sub":"1","exp":2,"aud":["a","b"],"x":{"Sub":1}}`: "",
		` { "sub" : "1" , "exp" : -1 } `:                    "",
		`{"Sub":"1"}`:                                       `claim "Sub": claim names are case-sensitive`,
		`{"sub":"1","sub":"2"}`:                             `claim "sub" given twice`,
		`{"exp":"2"}`:                                       `claim "exp" is not a number`,
		`{"iat":null}`:                                      `claim "iat" is not a number`,
		`{"s\u0075b":"1"}`:                                  "a claim name written with escapes",
		`{"a":"}","sub":"1"}`:                               "",
	} {
		err := strictClaims(tok(p))
		if want == "" {
			require.NoError(t, err, p)
		} else {
			require.ErrorContains(t, err, want, p)
		}
	}
}
