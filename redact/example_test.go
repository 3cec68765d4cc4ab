package redact_test

import (
	"fmt"

	"github.com/tidemark/tidemark/redact"
)

// A URL keeps its scheme, user, host and path; its password and query values
// are masked, and a URL that does not parse is not shown at all.
func ExampleURL() {
	fmt.Println(redact.URL("postgres://app:S3cret@db:5432/tidemark?sslmode=require"))
	fmt.Println(redact.URL("postgres://app:pa%ss@db/tidemark"))
	// Output:
	// postgres://app:xxxxx@db:5432/tidemark?sslmode=xxxxx
	// <unparseable URL>
}

// Every URL in an error message is redacted; the rest of the message stays.
func ExampleText() {
	err := fmt.Errorf(`orderapi: lookup: Get "https://partner.example/orders?api_key=S3cret": dial tcp: connection refused`)
	fmt.Println(redact.Text(err.Error()))
	// Output:
	// orderapi: lookup: Get "https://partner.example/orders?api_key=xxxxx": dial tcp: connection refused
}
