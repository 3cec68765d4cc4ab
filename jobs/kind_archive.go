package jobs

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/tidemark/tidemark/store"
)

// ArchiveMaintainArgs keeps job_archive's monthly partitions: the coming
// months created ahead, the months past AUDIT_RETENTION dropped whole.
// Daily and on start; unique per hour.
type ArchiveMaintainArgs struct{}

// Kind is archive_maintain.
func (ArchiveMaintainArgs) Kind() string { return "archive_maintain" }

// InsertOpts makes the maintenance unique per hour.
func (ArchiveMaintainArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
}

// ArchiveMaintainWorker runs store.MaintainArchive and records what it
// created and dropped; an attempt is DDL on a few partitions.
type ArchiveMaintainWorker struct{ worker[ArchiveMaintainArgs] }

// NewArchiveMaintainWorker returns the archive maintenance worker.
func NewArchiveMaintainWorker(deps Deps) *ArchiveMaintainWorker {
	return &ArchiveMaintainWorker{worker[ArchiveMaintainArgs]{deps: deps, timeout: time.Minute}}
}

// Work maintains the archive.
func (w *ArchiveMaintainWorker) Work(ctx context.Context, job *river.Job[ArchiveMaintainArgs]) error {
	retention := w.deps.AuditRetention
	if retention == 0 {
		retention = DefaultAuditRetention
	}
	out, err := w.deps.Store.MaintainArchive(ctx, retention, time.Now())
	if err != nil {
		return err
	}
	if out.LeasesDeleted, err = w.deps.Store.DeleteLeases(ctx, store.LeaseRetention); err != nil {
		return err
	}
	if len(out.Created)+len(out.Dropped) > 0 {
		w.deps.Logger.InfoContext(ctx, "archive_maintain", "created", out.Created, "dropped", out.Dropped)
	}
	return recordOutput(ctx, w.deps.Store, job.ID, out)
}
