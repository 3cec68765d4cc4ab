package jobs

import (
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// ClientConfig is how a River client in this process is set up.
type ClientConfig struct {
	// Queues maps queue names to worker counts. Empty: an insert-only client.
	Queues map[string]int
	// Retention is how long finished jobs stay in river_job before River's
	// cleaner deletes them, which moves them to the audit archive.
	Retention time.Duration
	// RescueAfter is the least time a job runs before River's rescuer may
	// hand it back as orphaned (its worker presumed dead); a job is rescued
	// only once it has also run longer than its kind's Timeout. More than
	// DefaultJobTimeout (River's rule).
	RescueAfter time.Duration
	// Periodic enables periodic jobs (run by the elected leader only).
	Periodic bool
	// FetchCooldown and FetchPollInterval tune fetching; zero keeps River's.
	FetchCooldown, FetchPollInterval time.Duration
	// PollOnly makes the client listen for nothing (no LISTEN/NOTIFY), as a
	// transaction pooler requires: it fetches every FetchPollInterval
	// (PollOnlyFetchPollInterval when zero) and elects its leader by polling.
	PollOnly bool
	// Middleware wraps job inserts and work (River's Config.Middleware),
	// inside joblog's, which every client installs.
	Middleware []rivertype.Middleware
}

// PollOnlyFetchPollInterval is how often a poll-only client's queues look
// for new jobs when ClientConfig sets no FetchPollInterval. River's 1 s
// default would add up to a second to every hop of a fan-out (therapy_daily
// → therapy_stats) that LISTEN/NOTIFY wakes at once; a fetch of an empty
// queue is one indexed query.
const PollOnlyFetchPollInterval = 100 * time.Millisecond

// DefaultJobTimeout bounds an attempt of a kind that sets no Timeout of its
// own (every kind sets one); River requires the rescue window to be longer.
const DefaultJobTimeout = 10 * time.Second

// Client is tidemark's River client type.
type Client = river.Client[pgx.Tx]
