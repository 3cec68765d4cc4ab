// Package jobs holds tidemark's River job kinds, one kind_ file per kind
// (FooArgs + FooWorker), the one place that registers their workers
// (Register), the one place that lists periodic jobs (PeriodicJobs), and
// NewClient, which builds the River client every command uses.
//
// Every kind has a stable snake_case Kind(), a unique key where a duplicate
// would be wrong, a bounded MaxAttempts and a Timeout shorter than the client's
// rescue window, so a job whose worker died is handed back and retried.
//
// The files form three layers. The machinery (client.go, deps.go, queues.go,
// worker.go, fence.go, progress.go, run_identity.go, enqueue_inserts.go) is
// what every kind runs on. The kinds are the kind_*.go files, one per kind or
// batch family. The assembly, registry.go, is the one file that names every
// kind: Register, Kinds, PeriodicJobs, ReconcileChecks and NewClient. A kind
// uses the machinery and other kinds; the assembly uses both; the machinery
// names no kind and nothing of the assembly, and learns what it must know of
// a kind from the kind's own methods (an Args that claims no lease has an
// unleased method). TestLayoutArrowsPointOneWay keeps that rule
// (docs/design/jobs-layout.md).
package jobs
