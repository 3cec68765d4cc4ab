package config

import (
	"fmt"
	"strconv"
	"time"
)

// Session is what Postgres enforces on every session of a pool, so that no
// session — a frozen worker's above all — holds the others back: a
// transaction left idle is ended (idle_in_transaction_session_timeout), a
// lock waited for too long fails the statement (lock_timeout), a statement
// running too long is cancelled (statement_timeout). Zero is no limit.
type Session struct {
	IdleInTransaction time.Duration
	Lock              time.Duration
	Statement         time.Duration
}

// The sessions' defaults.
//
// The worker's: a transaction idles at most 5 s, less than any rescue can
// take (RESCUE_AFTER is more than 10 s), so a frozen worker's transaction is
// ended, and its locks released, before another worker can take over its job;
// a lock is waited for 10 s, longer than that, so a live attempt outlasts the
// frozen one rather than failing first; a statement runs at most a minute,
// the longest job timeout.
var (
	DefaultWorkerSession = Session{IdleInTransaction: 5 * time.Second, Lock: 10 * time.Second, Statement: time.Minute}
	// EnqueueSession is the operator CLI's: its loads and backfills run
	// long statements, but it must not block the workers for long either.
	EnqueueSession = Session{IdleInTransaction: time.Minute, Lock: 10 * time.Second, Statement: 10 * time.Minute}
)

// worker migrate's session is the migrations package's own (idle in
// transaction 1 min, lock 30 s, statement 30 min): migrations.Up is called by
// tests and tools that have no configuration.

// RuntimeParams are s as the startup parameters of a Postgres connection
// (pgx's ConnConfig.RuntimeParams, or the query parameters of a URL).
func (s Session) RuntimeParams() map[string]string {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	return map[string]string{
		"idle_in_transaction_session_timeout": ms(s.IdleInTransaction),
		"lock_timeout":                        ms(s.Lock),
		"statement_timeout":                   ms(s.Statement),
	}
}

func (s Session) String() string {
	return fmt.Sprintf("idle in transaction %s, lock %s, statement %s", s.IdleInTransaction, s.Lock, s.Statement)
}

// sessionFromEnv reads DB_IDLE_TX_TIMEOUT, DB_LOCK_TIMEOUT and
// DB_STATEMENT_TIMEOUT over the worker's defaults.
func sessionFromEnv(dur func(string, time.Duration) time.Duration) Session {
	d := DefaultWorkerSession
	return Session{
		IdleInTransaction: dur("DB_IDLE_TX_TIMEOUT", d.IdleInTransaction),
		Lock:              dur("DB_LOCK_TIMEOUT", d.Lock),
		Statement:         dur("DB_STATEMENT_TIMEOUT", d.Statement),
	}
}

// validateSession checks the worker's session against the rescue: a frozen
// worker's transaction must end before its job can be rescued, and a live
// attempt must wait for a lock longer than a frozen transaction can hold it.
func (c Config) validateSession() error {
	s := c.Session
	switch {
	case s.IdleInTransaction < time.Second || s.IdleInTransaction >= c.RescueAfter:
		return fmt.Errorf("DB_IDLE_TX_TIMEOUT: 1s up to less than RESCUE_AFTER (%s), so a frozen worker's transaction ends before its job is rescued; got %s",
			c.RescueAfter, s.IdleInTransaction)
	case s.Lock <= s.IdleInTransaction || s.Lock > 5*time.Minute:
		return fmt.Errorf("DB_LOCK_TIMEOUT: more than DB_IDLE_TX_TIMEOUT (%s), so a live attempt outlasts a frozen one's locks, and at most 5m; got %s",
			s.IdleInTransaction, s.Lock)
	case s.Statement < 10*time.Second || s.Statement > time.Hour:
		return fmt.Errorf("DB_STATEMENT_TIMEOUT: 10s..1h, got %s", s.Statement)
	}
	return nil
}
