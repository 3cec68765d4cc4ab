// Package jobs holds tidemark's River job kinds, one file per kind (FooArgs +
// FooWorker), the one place that registers their workers (Register), the one
// place that lists periodic jobs (PeriodicJobs), and NewClient, which builds the
// River client every command uses.
//
// Every kind has a stable snake_case Kind(), a unique key where a duplicate
// would be wrong, a bounded MaxAttempts and a Timeout shorter than the client's
// rescue window, so a job whose worker died is handed back and retried.
package jobs
