// Package coupongate is the Redis-backed first-come gate in front of coupon
// issuance. Postgres is the source of truth; the gate only decides,
// fast and atomically, who gets one of a coupon's seats.
//
// Per coupon it keeps two keys: a stock counter (prefix+"coupon:stock:"+code)
// and the set of members issued so far (prefix+"coupon:issued:"+code). Every
// script here keeps stock + |issued| unchanged except Load and Resync, which
// set stock to total - |issued| in one atomic step, so the invariant
// "stock + |issued| = total" holds whatever interleaving of issues, undos and
// repairs happens.
package coupongate
