package auth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Role is what an operator may do.
type Role string

// The roles. A viewer reads: the batch page, River UI's pages and read API,
// the API's read endpoints. An operator also changes things: every mutating
// endpoint and River UI action.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
)

// Allows reports whether r may do what needs role need.
func (r Role) Allows(need Role) bool {
	switch need {
	case RoleViewer:
		return r == RoleViewer || r == RoleOperator
	case RoleOperator:
		return r == RoleOperator
	}
	return false
}

// ParseRole parses "viewer" or "operator".
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleViewer, RoleOperator:
		return Role(s), nil
	}
	return "", fmt.Errorf("role %q: want viewer or operator", s)
}

// Operator is a named person or system with a role.
type Operator struct {
	Name string
	Role Role
}

// AdminName is the operator ADMIN_TOKEN stands for.
const AdminName = "admin"

// MinTokenLen is the least length of an operator's token, ADMIN_TOKEN and
// METRICS_TOKEN: 16 bytes is 128 bits when the token is random, which is
// beyond guessing at any request rate.
const MinTokenLen = 16

// CheckToken reports what is wrong with a token a variable (named by name)
// gives, without quoting it.
func CheckToken(name, token string) error {
	switch {
	case strings.TrimSpace(token) == "":
		return fmt.Errorf("%s: is only spaces; want a random token of at least %d bytes", name, MinTokenLen)
	case len(token) < MinTokenLen:
		return fmt.Errorf("%s: is %d bytes; want a random token of at least %d bytes", name, len(token), MinTokenLen)
	}
	return nil
}

// Operators is the set of operators and the SHA-256 of each one's token.
// Its zero value has no operator. It is read-only once built.
type Operators struct {
	list []operatorEntry
}

type operatorEntry struct {
	Operator
	hash [sha256.Size]byte
}

// nameRE is an operator's name: safe in a log line, a Basic user name and a
// SQL audit row as it is.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// MaxOperators bounds an operators file; each request compares its token with
// every operator's.
const MaxOperators = 1000

// ParseOperators reads an operators file: one operator a line,
// name:role:sha256, where sha256 is the hex SHA-256 of the operator's token;
// '#' starts a comment, blank lines are skipped. An error names the line and
// what is wrong with it, and never quotes a hash.
func ParseOperators(r io.Reader) (*Operators, error) {
	ops := &Operators{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if err := ops.addLine(text); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, errors.New("a line is longer than 4096 bytes")
		}
		return nil, err
	}
	return ops, nil
}

func (o *Operators) addLine(text string) error {
	parts := strings.Split(text, ":")
	if len(parts) != 3 {
		return fmt.Errorf("want name:role:sha256, got %d field(s)", len(parts))
	}
	name, roleText, hexHash := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])
	role, err := ParseRole(roleText)
	if err != nil {
		return err
	}
	if len(hexHash) != 2*sha256.Size {
		return fmt.Errorf("operator %q: want the 64 hex digits of the token's SHA-256 (sha256sum), got %d characters", name, len(hexHash))
	}
	var hash [sha256.Size]byte
	if _, err := hex.Decode(hash[:], []byte(hexHash)); err != nil {
		return fmt.Errorf("operator %q: the SHA-256 is not hex", name)
	}
	return o.add(name, role, hash)
}

// AddToken adds an operator whose token is token (ADMIN_TOKEN's admin).
func (o *Operators) AddToken(name string, role Role, token string) error {
	if err := CheckToken("token of "+name, token); err != nil {
		return err
	}
	return o.add(name, role, sha256.Sum256([]byte(token)))
}

func (o *Operators) add(name string, role Role, hash [sha256.Size]byte) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("operator name %q: want 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	for _, e := range o.list {
		if e.Name == name {
			return fmt.Errorf("operator %q is listed twice", name)
		}
		if e.hash == hash {
			return fmt.Errorf("operator %q has the same token as %q; give each operator a token of its own", name, e.Name)
		}
	}
	if len(o.list) >= MaxOperators {
		return fmt.Errorf("more than %d operators", MaxOperators)
	}
	o.list = append(o.list, operatorEntry{Operator: Operator{Name: name, Role: role}, hash: hash})
	return nil
}

// Len is the number of operators.
func (o *Operators) Len() int {
	if o == nil {
		return 0
	}
	return len(o.list)
}

// ByToken returns the operator whose token is token. It compares the
// token's hash with every operator's in constant time, so the time it takes
// says nothing about which operator, if any, matched, or how close a wrong
// token came.
func (o *Operators) ByToken(token string) (Operator, bool) {
	if o == nil || token == "" {
		return Operator{}, false
	}
	h := sha256.Sum256([]byte(token))
	found := -1
	for i := range o.list {
		if subtle.ConstantTimeCompare(h[:], o.list[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Operator{}, false
	}
	return o.list[found].Operator, true
}

// ByBasic returns the operator of HTTP Basic credentials name:token: the
// operator named name, if token is theirs. An unknown name costs the same
// comparison as a known one.
func (o *Operators) ByBasic(name, token string) (Operator, bool) {
	if o == nil || token == "" {
		return Operator{}, false
	}
	h := sha256.Sum256([]byte(token))
	var want [sha256.Size]byte
	found := -1
	for i := range o.list {
		if o.list[i].Name == name {
			want, found = o.list[i].hash, i
		}
	}
	if subtle.ConstantTimeCompare(h[:], want[:]) != 1 || found < 0 {
		return Operator{}, false
	}
	return o.list[found].Operator, true
}

// Names lists the operators as name (role), for the start-up log line.
func (o *Operators) Names() []string {
	if o == nil {
		return nil
	}
	out := make([]string, len(o.list))
	for i, e := range o.list {
		out[i] = e.Name + " (" + string(e.Role) + ")"
	}
	return out
}
