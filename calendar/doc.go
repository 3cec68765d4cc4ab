// Package calendar holds tidemark's calendar rules: the year-month of a
// monthly batch ("2026-11"), the business date of a daily one ("2026-11-20"),
// and how both map onto instants in the business time zone (BATCH_TZ); and
// the batches' date rules: the month a daily therapy run aggregates
// (TherapyMonthFor) and the business date the nightly settlement runs for
// (SettlementBusinessDate, from SettlementStart).
//
// Business dates and months are computed in the zone the caller passes — the
// configured BATCH_TZ — never in UTC or the machine's local time, so every
// package that decides "which day" or "which month" agrees. Parsers accept
// exactly one spelling of each value, with no spaces and no signs, and refuse
// anything else with an error that says what is wanted.
package calendar
