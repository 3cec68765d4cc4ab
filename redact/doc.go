// Package redact holds tidemark's one rule for secrets in text: what a
// secret looks like in a URL or in an error message, and how it is masked
// before the text reaches stderr, a log line, a row or an HTTP answer.
//
// It is a package of its own, like calendar and coupon, because the rule is
// used by config, every command in cmd/, the logger (joblog), the order
// jobs, store and httpapi: kept once here, every one of them masks the same
// things the same way.
//
// A URL keeps what an operator needs to tell which service failed — its
// scheme, user name, host, port and path — and loses its password, its query
// values (API keys live there) and its fragment. A URL that cannot be taken
// apart with certainty is never echoed: it becomes Unparseable. In free text
// (Text), every scheme:// substring is redacted that way, and so is the
// value of a password=… keyword, as in a libpq connection string.
package redact
