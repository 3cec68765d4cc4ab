package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Partner is the budget every worker process shares toward the order
// partner, held in Redis (package partnerbudget).
type Partner struct {
	// Rate is how many calls a second all processes together may start
	// (ORDER_API_RATE); 0 is no limit.
	Rate float64
	// Concurrency is how many calls all processes together may have in
	// flight (ORDER_API_CONCURRENCY); 0 is no limit.
	Concurrency int
	// KeyPrefix prefixes the budget's Redis keys (ORDER_API_BUDGET_KEY):
	// processes with the same prefix on the same Redis share one budget.
	KeyPrefix string
}

// DefaultPartnerKey is ORDER_API_BUDGET_KEY's default.
const DefaultPartnerKey = "tidemark:partner"

// Bounds of the partner budget's settings.
const (
	MaxPartnerRate        = 100000
	MaxPartnerConcurrency = 100000
)

func partnerFromEnv(getenv func(string) string) (Partner, error) {
	p := Partner{KeyPrefix: DefaultPartnerKey}
	if v := strings.TrimSpace(getenv("ORDER_API_RATE")); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(r) || r < 0 || r > MaxPartnerRate {
			return p, fmt.Errorf("ORDER_API_RATE: want calls per second across all workers, 0 (no limit) to %d, like 90 or 0.5, got %q", MaxPartnerRate, v)
		}
		if r > 0 && r < 0.01 {
			return p, fmt.Errorf("ORDER_API_RATE: at least 0.01 calls per second (or 0 for no limit), got %q", v)
		}
		p.Rate = r
	}
	if v := strings.TrimSpace(getenv("ORDER_API_CONCURRENCY")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxPartnerConcurrency {
			return p, fmt.Errorf("ORDER_API_CONCURRENCY: want calls in flight across all workers, 0 (no limit) to %d, got %q", MaxPartnerConcurrency, v)
		}
		p.Concurrency = n
	}
	if v := getenv("ORDER_API_BUDGET_KEY"); v != "" {
		switch {
		case strings.TrimSpace(v) != v || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return p, fmt.Errorf("ORDER_API_BUDGET_KEY: no spaces or control characters, got %q", v)
		case len(v) > 100:
			return p, fmt.Errorf("ORDER_API_BUDGET_KEY: at most 100 bytes, got %d", len(v))
		}
		p.KeyPrefix = v
	}
	return p, nil
}
