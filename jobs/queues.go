package jobs

import "time"

// The queues, by name. Jobs are split by who waits for them, so that a burst of one
// kind of work cannot hold back another.
const (
	// QueueDefault carries the batches' starters and the periodic checks
	// (therapy_daily, the settlements, the exchange, the reconciliations,
	// archive_maintain): few jobs, each of which must start when it is due.
	QueueDefault = "default"
	// QueueTherapy carries the therapy run's fan-out, one job per user.
	QueueTherapy = "therapy"
	// QueueOutbound carries the calls to the order partner.
	QueueOutbound = "outbound"
	// QueueMember carries the jobs a member's request creates
	// (coupon_issue_persist, one per accepted coupon request). Their number
	// follows user traffic, not the calendar: a rush inserts thousands a
	// second, faster than any worker count drains them, and on the default
	// queue the nightly batches would wait behind that backlog. On a queue
	// of their own, with their own workers, they delay nothing else.
	QueueMember = "member"
)

// The outbound queue's fetch settings. River refetches on a job's
// completion only when its last fetch filled every free slot, so jobs that
// all take about as long as a partner's answer run in waves: a wave's first
// completion fetches one job, the rest of the wave's slots wait for the next
// fetch, and the next wave starts together again. Polling every
// OutboundFetchPollInterval (River adds up to 10 ms of jitter) refills freed
// slots between waves (bin/bench riverfetch compares the two). The price is
// an idle queue polling Postgres about 60 times a second with a query that
// finds nothing. The cooldown bounds how often a busy queue fetches.
const (
	OutboundFetchCooldown     = 2 * time.Millisecond
	OutboundFetchPollInterval = 10 * time.Millisecond
)

// DefaultAuditRetention is how long the archive keeps a finished job when
// it is not told (AUDIT_RETENTION's default): 400 days.
const DefaultAuditRetention = 400 * 24 * time.Hour
