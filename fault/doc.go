// Package fault is tidemark's fault suite: tests that break what tidemark
// depends on — they crash-restart a private Postgres server in the middle of
// each batch kind — and then check that every batch ends with the results a
// direct SQL computation over its source tables gives, with nothing lost and
// nothing done twice, and that the worker processes recovered on their own.
//
// `make test` runs each case once; `make chaos` runs each CHAOS_REPS times,
// crashing at a different moment of the run each time, and prints a table of
// fault × batch → result, losses, duplicates and recovery times.
package fault
