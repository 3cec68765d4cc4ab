package redact

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a password, a query value and a fragment; it is the mask
// (*url.URL).Redacted uses.
const Mask = "xxxxx"

// Unparseable replaces a URL that cannot be taken apart with certainty: one
// url.Parse refuses (a bare "%" in its password), one without scheme://, or
// one with an "@" after its host (a password holding "/", "?" or "#" that
// url.Parse took for the start of a path, a query or a fragment). Its parts
// cannot be told apart, so none of it is shown.
const Unparseable = "<unparseable URL>"

// URL returns raw with its password, query values and fragment masked, or
// Unparseable when raw cannot be taken apart with certainty. The rest is
// raw's own text, not re-encoded.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" ||
		strings.Contains(u.EscapedPath(), "@") || strings.Contains(u.RawQuery, "@") || strings.Contains(u.EscapedFragment(), "@") {
		return Unparseable
	}
	// url.Parse accepted raw, so it is scheme "://" authority path ["?"
	// query] ["#" fragment], split where url.Parse splits it.
	scheme, rest, _ := strings.Cut(raw, ":")
	rest, ok := strings.CutPrefix(rest, "//")
	if !ok {
		return Unparseable
	}
	rest, frag, hasFrag := strings.Cut(rest, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	var b strings.Builder
	b.Grow(len(raw) + len(Mask))
	b.WriteString(scheme)
	b.WriteString("://")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		user, _, hasPassword := strings.Cut(authority[:i], ":")
		b.WriteString(user)
		if hasPassword {
			b.WriteString(":" + Mask)
		}
		authority = authority[i:]
	}
	b.WriteString(authority)
	b.WriteString(path)
	if hasQuery {
		b.WriteString("?" + maskQuery(query))
	}
	if hasFrag {
		b.WriteString("#")
		if frag != "" {
			b.WriteString(Mask)
		}
	}
	return b.String()
}

// maskQuery keeps the keys of a raw query and masks every value; a part
// without "=" is masked whole, since it may be a bare key.
func maskQuery(q string) string {
	if q == "" {
		return ""
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok {
			parts[i] = k + "=" + Mask
		} else if p != "" {
			parts[i] = Mask
		}
	}
	return strings.Join(parts, "&")
}

// ParseURL parses raw like url.Parse, but its error never quotes raw nor any
// part of it: url.Parse's error quotes the whole URL, and its reasons quote
// the offending bytes ("%ss", the characters after a bad port), which may be
// a password's.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil {
		return u, nil
	}
	// Not wrapped: the *url.Error's own text quotes raw.
	return nil, fmt.Errorf("not a valid URL (%s)", parseReason(err))
}

// quoted is a Go-quoted string inside an error message.
var quoted = regexp.MustCompile(`\s*"(?:[^"\\]|\\.)*"`)

func parseReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ee url.EscapeError
	if errors.As(err, &ee) {
		return `a "%" not followed by two hex digits; write a literal % as %25`
	}
	return strings.TrimPrefix(quoted.ReplaceAllString(err.Error(), ""), "net/url: ")
}

// Line returns s on one line (every run of white space, newlines included,
// one space) and redacted as Text: how an error's message is printed or
// shown where a line is all there is (a CLI's stderr, a report's cell).
func Line(s string) string {
	return Text(strings.Join(strings.Fields(s), " "))
}

// Text returns s with every scheme:// substring redacted as URL does, and
// the value of every password=… keyword (libpq's key/value connection
// strings, PGPASSWORD=…) masked. Text with neither costs three substring
// searches and is returned as is.
func Text(s string) string {
	hasURL := strings.Contains(s, "://")
	// "assword" in either case: password, PASSWORD, sslpassword, PGPASSWORD.
	if strings.Contains(s, "assword") || strings.Contains(s, "ASSWORD") {
		// First, so that a URL given as a keyword's value is masked whole.
		s = keywordPassword.ReplaceAllString(s, "${1}${2}"+Mask)
	}
	if !hasURL {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		start := i
		for start > 0 && isSchemeChar(s[start-1]) {
			start--
		}
		for start < i && !isLetter(s[start]) { // a scheme starts with a letter
			start++
		}
		end := i + 3
		for end < len(s) && !endsURL(s[end]) {
			end++
		}
		// Punctuation that closes a sentence, a quote or a bracket around
		// the URL; never part of a password (the "@" after one ends the
		// userinfo before any of these could be trailing).
		tok := strings.TrimRight(s[start:end], `.,:;!?)]}'\`)
		b.WriteString(s[:start])
		if start == i && !strings.ContainsAny(tok, "@?#") {
			// No scheme, no credentials, no query: "http(s)://host" in a
			// message, not a URL.
			b.WriteString(tok)
		} else {
			b.WriteString(URL(tok))
		}
		s = s[start+len(tok):]
	}
}

// keywordPassword is a password keyword and its value: password=secret,
// password = 'se cret', PGPASSWORD=secret. A keyword right after "?" or "&"
// is a URL's query parameter, whose value URL masks.
var keywordPassword = regexp.MustCompile(`(?i)(^|[^?&\w])(\w*password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)`)

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isSchemeChar(c byte) bool {
	return isLetter(c) || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

// endsURL reports whether c ends a URL in free text: white space, a control
// character, and the quotes and brackets that surround URLs in messages
// (Go's %q, pgx's backquotes, <…>). None of them can be in the userinfo of a
// URL url.Parse accepts, so a URL's password is never cut in two.
func endsURL(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '"' || c == '`' || c == '<' || c == '>'
}

// Error returns err with its text redacted by Text; errors.Is and errors.As
// still see err. Nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return &redacted{err: err, msg: Text(err.Error())}
}

type redacted struct {
	err error
	msg string
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
