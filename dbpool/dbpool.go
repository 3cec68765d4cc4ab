// Package dbpool builds tidemark's Postgres pools, connected directly or
// through a pooler in transaction mode (PgBouncer's pool_mode = transaction),
// and checks that the server's sessions bound what config.Session says.
//
// Through a transaction pooler a client's consecutive transactions run on
// whichever server connection is free, and nothing a session remembers
// survives from one to the next. So a pool built for config.PoolerTransaction
//
//   - sends every statement unnamed, with pgx's QueryExecModeExec: no
//     statement is prepared by name (pgx's default caches named statements
//     per connection, which collide on a shared server connection), and no
//     statement description is cached (another server connection would not
//     know it);
//   - sends no startup parameters for the session timeouts: PgBouncer
//     refuses them, or drops them silently when told to ignore them. The
//     timeouts are the role's or the database's settings instead
//     (ALTER ROLE … SET), which every server connection applies at login,
//     and CheckSession verifies them through the pooler.
package dbpool

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/config"
)

// Config parses url (a postgres:// URL) into a pool configuration for
// pooler (config.PoolerNone or config.PoolerTransaction) whose sessions are
// bounded by s: directly, as startup parameters of every connection; through
// a transaction pooler, by the server's own settings (see CheckSession).
func Config(url, pooler string, s config.Session) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	switch pooler {
	case config.PoolerNone, "":
		for k, v := range s.RuntimeParams() {
			pc.ConnConfig.RuntimeParams[k] = v
		}
	case config.PoolerTransaction:
		pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		pc.ConnConfig.StatementCacheCapacity = 0
		pc.ConnConfig.DescriptionCacheCapacity = 0
		for k := range s.RuntimeParams() {
			delete(pc.ConnConfig.RuntimeParams, k)
		}
	default:
		return nil, fmt.Errorf("dbpool: unknown pooler %q (want %s or %s)", pooler, config.PoolerNone, config.PoolerTransaction)
	}
	return pc, nil
}

// Querier is what CheckSession reads the settings through: a pool or a
// connection.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// SessionMismatchError is a session setting of the server that differs from
// what the process requires.
type SessionMismatchError struct {
	Role, Database string
	// Name is the setting (lock_timeout…), Variable the environment
	// variable that sets what the process requires.
	Name, Variable string
	Have, Want     time.Duration
}

func (e *SessionMismatchError) Error() string {
	show := func(d time.Duration) string {
		if d == 0 {
			return "0 (no limit)"
		}
		return d.String()
	}
	return fmt.Sprintf("the server's %s is %s, %s requires %s: set it on the role, ALTER ROLE %s IN DATABASE %s SET %s = '%dms', or in the pooler's connect_query, and reconnect the pooler's server connections",
		e.Name, show(e.Have), e.Variable, show(e.Want), pgx.Identifier{e.Role}.Sanitize(), pgx.Identifier{e.Database}.Sanitize(), e.Name, e.Want.Milliseconds())
}

// CheckSession reads, through q, the session timeouts a server connection
// has before the client sets anything, and returns a *SessionMismatchError
// for the first one that differs from s. Through a transaction pooler it is
// what proves that the timeouts hold (Config sends none).
func CheckSession(ctx context.Context, q Querier, s config.Session) error {
	rows, err := q.Query(ctx, `
		SELECT current_user, current_database(), name, setting, coalesce(unit, '')
		FROM pg_settings
		WHERE name IN ('idle_in_transaction_session_timeout', 'lock_timeout', 'statement_timeout')
		ORDER BY name`)
	if err != nil {
		return fmt.Errorf("dbpool: read session settings: %w", err)
	}
	want := map[string]struct {
		d   time.Duration
		env string
	}{
		"idle_in_transaction_session_timeout": {s.IdleInTransaction, "DB_IDLE_TX_TIMEOUT"},
		"lock_timeout":                        {s.Lock, "DB_LOCK_TIMEOUT"},
		"statement_timeout":                   {s.Statement, "DB_STATEMENT_TIMEOUT"},
	}
	var mismatches []*SessionMismatchError
	seen := 0
	for rows.Next() {
		var role, db, name, setting, unit string
		if err := rows.Scan(&role, &db, &name, &setting, &unit); err != nil {
			return fmt.Errorf("dbpool: read session settings: %w", err)
		}
		have, err := settingDuration(setting, unit)
		if err != nil {
			return fmt.Errorf("dbpool: session setting %s: %w", name, err)
		}
		seen++
		if w := want[name]; have != w.d.Truncate(time.Millisecond) {
			mismatches = append(mismatches, &SessionMismatchError{Role: role, Database: db, Name: name, Variable: w.env, Have: have, Want: w.d})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("dbpool: read session settings: %w", err)
	}
	if seen != len(want) {
		return fmt.Errorf("dbpool: read session settings: %d of %d found in pg_settings", seen, len(want))
	}
	if len(mismatches) > 0 {
		return mismatches[0]
	}
	return nil
}

// settingDuration is a pg_settings value with its unit ("5000", "ms").
func settingDuration(setting, unit string) (time.Duration, error) {
	n, err := strconv.ParseInt(setting, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", setting)
	}
	switch strings.ToLower(unit) {
	case "ms":
		return time.Duration(n) * time.Millisecond, nil
	case "s":
		return time.Duration(n) * time.Second, nil
	case "min":
		return time.Duration(n) * time.Minute, nil
	}
	return 0, fmt.Errorf("unit %q", unit)
}
