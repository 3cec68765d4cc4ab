package httpapi

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDuplicateKey(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"a":1,"b":2}`:                         "",
		`{"username":"alice","USERNAME":"bob"}`: "USERNAME",
		`{"ids":["4"],"IDS":["5"]}`:             "IDS",
		`{"a":1,"a":2}`:                         "a",
		`{"a":{"b":1,"B":2}}`:                   "B",
		`{"a":[{"b":1},{"b":2}],"c":{"b":3}}`:   "",
		`{"a":{"x":1},"A":{"y":2}}`:             "A",
		`{"k":1,"\u212a":2}`:                    "\u212a", // the Kelvin sign folds to k
		`[{"a":1},{"a":1}]`:                     "",
		`{"a":"b","b":"a"}`:                     "",
		`{"a":`:                                 "",
		`not json`:                              "",
	} {
		require.Equal(t, want, duplicateKey([]byte(body)), body)
	}
}
