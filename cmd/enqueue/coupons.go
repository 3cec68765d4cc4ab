package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/coupon"
	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/cliflag"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// openGate connects to REDIS_URL; close releases it.
func (e *env) openGate(ctx context.Context) (gate *coupongate.Gate, closeFn func(), err error) {
	rdb, err := coupongate.Dial(ctx, e.redisOpt)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: connect: %w", err)
	}
	return coupongate.New(rdb, ""), func() { rdb.Close() }, nil
}

// openGateAndStore connects to Redis, then to Postgres (see open), so that a
// command writing both fails on Redis before it writes Postgres; close
// releases Redis.
func (e *env) openGateAndStore(ctx context.Context) (gate *coupongate.Gate, closeFn func(), err error) {
	gate, closeFn, err = e.openGate(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := e.open(ctx); err != nil {
		closeFn()
		return nil, nil, err
	}
	return gate, closeFn, nil
}

// parseCode parses the args of a subcommand whose one flag is --code.
func parseCode(e *env, name string, args []string) (string, error) {
	fs := e.newFlagSet(name)
	code := fs.String("code", "", "coupon code (required)")
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if !coupon.ValidCode(*code) {
		return "", cliflag.Usagef("--code: want 1-64 letters, digits, _ or -, got %q", *code)
	}
	return *code, nil
}

// unknownCode is err, or the usage error of a --code no coupon has when err
// is store.ErrNotFound.
func unknownCode(err error, code string) error {
	if errors.Is(err, store.ErrNotFound) {
		return cliflag.Usagef("--code: unknown coupon %q; nothing changed", code)
	}
	return err
}

func cmdCouponCreate(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("coupon create")
	code := fs.String("code", "", "coupon code: 1-64 letters, digits, _ or - (required)")
	name := fs.String("name", "", "name (required)")
	desc := fs.String("description", "", "description")
	amountType := fs.String("amount-type", "", "FIX (an amount) or RATE (a percentage) (required)")
	amount := fs.Int("amount", 0, "discount: an amount for FIX, 1-100 for RATE (required)")
	total := fs.Int("total", -1, "number of coupons that can be issued (required)")
	expires := fs.String("expires-at", "", "expiry, RFC 3339 (default: none)")
	inactive := fs.Bool("inactive", false, "create INACTIVE (not issuable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !coupon.ValidCode(*code) {
		return cliflag.Usagef("--code: want 1-64 letters, digits, _ or -, got %q", *code)
	}
	if err := coupon.ValidateTerms(*name, *desc, *amountType, *amount); err != nil {
		return cliflag.Usagef("--%v", err)
	}
	if *total < 0 || *total > 100_000_000 {
		return cliflag.Usagef("--total: want 0 to 100000000, got %d", *total)
	}
	nc := store.NewCoupon{Code: *code, Name: *name, Description: *desc, AmountType: *amountType,
		Amount: *amount, TotalQuantity: *total, Status: store.CouponActive}
	if *inactive {
		nc.Status = store.CouponInactive
	}
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			return cliflag.Usagef("--expires-at: want RFC 3339, like 2026-12-31T23:59:59+09:00, got %q", *expires)
		}
		if !t.After(time.Now()) {
			return cliflag.Usagef("--expires-at: %s is in the past", *expires)
		}
		nc.ExpiresAt = &t
	}
	// Redis first: a coupon must not exist in Postgres that the gate cannot
	// serve because Redis was down when it was made.
	gate, closeGate, err := e.openGateAndStore(ctx)
	if err != nil {
		return err
	}
	defer closeGate()
	c, stock, err := jobs.CreateCoupon(ctx, jobs.Deps{Store: e.store, Gate: gate}, nc)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "coupon %s created: id %d, %s, total %d, Redis stock %d\n", c.Code, c.ID, c.Status, c.TotalQuantity, stock)
	return nil
}

func cmdCouponLoadRedis(ctx context.Context, e *env, args []string) error {
	code, err := parseCode(e, "coupon load-redis", args)
	if err != nil {
		return err
	}
	gate, closeGate, err := e.openGateAndStore(ctx)
	if err != nil {
		return err
	}
	defer closeGate()
	c, err := e.store.CouponByCode(ctx, code)
	if err != nil {
		return unknownCode(err, code)
	}
	stock, err := jobs.RebuildCouponGate(ctx, jobs.Deps{Store: e.store, Gate: gate}, c)
	if err != nil {
		return err
	}
	if c.Status != store.CouponActive {
		fmt.Fprintf(e.stdout, "coupon %s is %s: its Redis keys were removed\n", c.Code, c.Status)
		return nil
	}
	fmt.Fprintf(e.stdout, "coupon %s loaded into Redis: stock %d of %d\n", c.Code, stock, c.TotalQuantity)
	return nil
}

func cmdCouponExpire(ctx context.Context, e *env, args []string) error {
	code, err := parseCode(e, "coupon expire", args)
	if err != nil {
		return err
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	c, err := e.store.ExpireCoupon(ctx, code)
	if err != nil {
		return unknownCode(err, code)
	}
	fmt.Fprintf(e.stdout, "coupon %s (id %d) expired at %s with %d of %d issued; exchange its unused issues with coupon-exchange --expired-coupon-id %d\n",
		c.Code, c.ID, c.ExpiresAt.Format(time.RFC3339), c.IssuedQuantity, c.TotalQuantity, c.ID)
	return nil
}

func cmdCouponExchange(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("coupon-exchange")
	var a jobs.CouponExchangeArgs
	fs.StringVar(&a.Name, "name", "", "name of the compensation coupon (required, identifying)")
	fs.StringVar(&a.Description, "description", "", "its description (identifying)")
	fs.StringVar(&a.AmountType, "amount-type", "", "FIX or RATE (required, identifying)")
	fs.IntVar(&a.Amount, "amount", 0, "its amount: FIX an amount, RATE 1-100 (required, identifying)")
	fs.Int64Var(&a.ExpiredCouponID, "expired-coupon-id", 0, "id of the expired coupon whose unused issues are exchanged (required, identifying)")
	fs.IntVar(&a.ChunkSize, "chunk-size", 500, "issues exchanged per transaction (not identifying)")
	rerun := fs.Bool("rerun", false, "run again after a run with these parameters completed: exchange the issues still unexchanged")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if a.ChunkSize < 1 || a.ChunkSize > 10000 {
		return cliflag.Usagef("--chunk-size: want 1 to 10000, got %d", a.ChunkSize)
	}
	if err := a.Validate(); err != nil {
		return cliflag.Usagef("--%v", err)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	if _, err := e.store.CouponByID(ctx, a.ExpiredCouponID); errors.Is(err, store.ErrNotFound) {
		return cliflag.Usagef("--expired-coupon-id: no coupon with id %d; nothing enqueued", a.ExpiredCouponID)
	} else if err != nil {
		return err
	}
	job, err := jobs.EnqueueCouponExchange(ctx, e.client, e.store, a, *rerun)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "coupon_exchange: job %d enqueued; compensation coupon %s (watch with enqueue status / enqueue wait)\n",
		job.ID, jobs.ExchangeCouponCode(job.ID))
	return nil
}
