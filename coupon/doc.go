// Package coupon holds the rules of a coupon's terms: the format of its code
// and what its name, description, amount type and amount may be (the name and
// description obey package usertext's rule for text a user gives). The CLI,
// the HTTP API and the jobs check terms here, so a coupon one of them accepts
// is one the others accept too.
package coupon
