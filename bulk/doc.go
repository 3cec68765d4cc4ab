// Package bulk retries or cancels every job a filter matches — kinds,
// states, queues, a time window, text in the last error — as an operator
// asks with `enqueue retry` and `enqueue cancel`.
//
// Jobs are listed and changed through River's public API only
// (Client.JobListTx, JobRetryTx, JobCancelTx), in batches of one transaction
// each, so a large action neither holds one long transaction nor locks more
// than a batch's jobs at a time. Every action is recorded in operator_action:
// the row before the first batch, each batch's counts in the transaction that
// made its changes, so what the row says was done is exactly what committed.
// Count is the dry run: the same filter, the same River listing, no change.
//
// The rules of a filter live here (Action.States, Filter.Validate,
// ParseTime): which states each action may act on and by default, which
// column a time window bounds, what an unusable filter is.
package bulk
