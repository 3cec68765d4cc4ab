// Package partnerbudget is the call budget toward the order partner that
// every worker process shares through Redis: a rate (calls started a
// second, a GCRA whose slots are reserved ahead), a number of calls in
// flight (a sorted set of slots that expire, so a killed process's slots
// come back), a pause that a 429 or 503 sets for everyone from its
// Retry-After, and a circuit breaker that opens when the partner keeps
// failing and lets one probe through at a time when it half-opens.
//
// A caller takes a Permit before each call (Acquire) and reports the call's
// outcome on it (Done). When there is no budget within a short in-process
// wait, Acquire returns a *NoBudget with how long to wait: the job snoozes
// and makes no call. docs/design/partner.md explains the choices.
package partnerbudget
