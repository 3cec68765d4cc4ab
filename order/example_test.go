package order_test

import (
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/order"
)

// A request is checked before it is stored; a refusal names the field at
// fault, which the CLI and the API report as their own field names.
func ExampleRequest_Validate() {
	err := order.Request{Username: "kim", TotalPrice: 10000, AppliedYearMonth: "2026-13"}.Validate()
	var ie *order.InputError
	if errors.As(err, &ie) {
		fmt.Println(ie.Field)
	}
	fmt.Println(err)
	// Output:
	// applied_year_month
	// applied_year_month: want YYYY-MM with MM in 01..12, got "2026-13"
}
