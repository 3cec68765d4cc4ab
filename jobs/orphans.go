package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"
)

// ReclaimableKinds are the job kinds whose running jobs are handed back as
// soon as their worker process is gone, instead of after River's rescue
// window (RESCUE_AFTER, at least 70 s). Only kinds whose protocol tolerates
// an attempt overlapping one that is, against all evidence, still running:
// order_submit looks the order up before posting again, and the third
// party's one-order-per-user-month rule backs that up.
var ReclaimableKinds = []string{OrderSubmitArgs{}.Kind()}

// NewClientID returns a River client id unique to this process (host, pid,
// start time, random), for its liveness lock.
func NewClientID() string {
	host, _ := os.Hostname()
	host = strings.NewReplacer(".", "_", "-", "_").Replace(host)
	if len(host) > 40 {
		host = host[:40]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s_%d_%s_%s", host, os.Getpid(), time.Now().UTC().Format("20060102T150405"), hex.EncodeToString(b))
}

// ReclaimOrphans hands back, every interval until ctx is done, the running
// jobs of ReclaimableKinds whose worker process no longer holds its liveness
// lock (see store.ReclaimOrphanedJobs). A worker SIGKILLed mid-batch then
// loses a few seconds, not RESCUE_AFTER plus the rescuer's 30 s tick. Every
// worker process runs it; the statement skips rows another one is handling.
//
// keep, if not nil, is called first on every round: the process's own
// liveness lock (store.ClientLiveness.Keep), retaken if its connection was
// lost.
func ReclaimOrphans(ctx context.Context, deps Deps, interval time.Duration, keep func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if keep != nil {
			if err := keep(ctx); err != nil && ctx.Err() == nil {
				deps.Logger.ErrorContext(ctx, "jobs: liveness lock lost; other workers may reclaim this one's running order jobs", "err", err)
			}
		}
		ids, err := deps.Store.ReclaimOrphanedJobs(ctx, ReclaimableKinds, interval)
		switch {
		case err != nil && ctx.Err() == nil:
			deps.Logger.WarnContext(ctx, "jobs: reclaim orphaned jobs", "err", err)
		case len(ids) > 0:
			deps.Logger.InfoContext(ctx, "jobs: reclaimed running jobs of a worker that is gone", "count", len(ids), "job_ids", ids)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
