package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

type couponCLI struct {
	pool  *pgxpool.Pool
	dbURL string
	store *store.Store
	rdb   *redis.Client
	gate  *coupongate.Gate // the CLI's gate: no prefix (tests use codes of their own)
}

func setupCouponCLI(t *testing.T) *couponCLI {
	t.Helper()
	pool, dbURL := testkit.Pool(t)
	rdb := testredis.Client(t)
	return &couponCLI{pool: pool, dbURL: dbURL, store: store.New(pool), rdb: rdb, gate: coupongate.New(rdb, "")}
}

// code returns a coupon code unique to this test run and removes its Redis
// keys when the test ends (the CLI uses no key prefix).
func (b *couponCLI) code(t *testing.T, base string) string {
	t.Helper()
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	code := base + "-" + hex.EncodeToString(r)
	t.Cleanup(func() { b.rdb.Del(context.Background(), b.gate.StockKey(code), b.gate.IssuedKey(code)) })
	return code
}

func (b *couponCLI) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env := map[string]string{"DATABASE_URL": b.dbURL, "REDIS_URL": testredis.URL()}
	var o, e bytes.Buffer
	code = Main(context.Background(), args, func(k string) string { return env[k] }, &o, &e)
	return code, o.String(), e.String()
}

func (b *couponCLI) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return int(testkit.Count(t, b.pool, sql, args...))
}

func (b *couponCLI) deps(t *testing.T) jobs.Deps {
	return jobs.Deps{Store: b.store, TZ: time.UTC, Logger: testkit.Logger(t), Gate: b.gate}
}

func TestCouponCreateAndBadInput(t *testing.T) {
	t.Parallel()
	b := setupCouponCLI(t)
	ctx := context.Background()
	code := b.code(t, "NEW")

	bad := [][]string{
		{"coupon"},
		{"coupon", "delete", "--code", code},
		{"coupon", "create", "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "5"},
		{"coupon", "create", "--code", "bad code!", "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "5"},
		{"coupon", "create", "--code", code, "--amount-type", "FIX", "--amount", "1", "--total", "5"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "PCT", "--amount", "1", "--total", "5"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "0", "--total", "5"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "RATE", "--amount", "101", "--total", "5"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "1"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "-2"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "x", "--total", "5"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "5", "--expires-at", "tomorrow"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "5", "--expires-at", "2020-01-01T00:00:00Z"},
		{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "5", "extra"},
		{"coupon", "load-redis"},
		{"coupon", "load-redis", "--code", "NOPE-x"},
	}
	for _, args := range bad {
		exit, _, stderr := b.run(t, args...)
		require.Equal(t, 2, exit, "%v: %s", args, stderr)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %q", stderr)
	}
	// Text a user gives must be safe text (package usertext); the error names
	// the flag and what is wrong.
	for _, c := range []struct{ flag, value, want string }{
		{"--name", "\u202eevil", "--name: contains a right-to-left override U+202E at character 1"},
		{"--name", `=HYPERLINK("http://evil.example")`, "--name: starts with '=' (a spreadsheet formula)"},
		{"--name", "half\xffoff", "--name: contains an invalid UTF-8 byte 0xFF at character 5"},
		{"--description", "-50% for members", "--description: starts with '-' (a spreadsheet formula)"},
		{"--description", "line\nbreak", "--description: contains a line feed U+000A at character 5"},
	} {
		args := []string{"coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "5", c.flag, c.value}
		exit, _, stderr := b.run(t, args...)
		require.Equal(t, 2, exit, "%v: %s", args, stderr)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %q", stderr)
		require.Contains(t, stderr, c.want)
	}
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM coupon`))
	n, err := b.rdb.Exists(ctx, b.gate.StockKey(code), b.gate.IssuedKey(code)).Result()
	require.NoError(t, err)
	require.Zero(t, n)

	exit, stdout, stderr := b.run(t, "coupon", "create", "--code", code, "--name", "Opening", "--amount-type", "RATE", "--amount", "10", "--total", "100")
	require.Equal(t, 0, exit, stderr)
	require.Contains(t, stdout, "Redis stock 100")
	st, err := b.gate.State(ctx, code)
	require.NoError(t, err)
	require.True(t, st.Loaded)
	require.EqualValues(t, 100, st.Stock)

	exit, _, stderr = b.run(t, "coupon", "create", "--code", code, "--name", "Again", "--amount-type", "FIX", "--amount", "10", "--total", "5")
	require.Equal(t, 1, exit)
	require.Contains(t, stderr, "already exists")
	c, err := b.store.CouponByCode(ctx, code)
	require.NoError(t, err)
	require.Equal(t, "Opening", c.Name)
}

// After Redis lost a coupon's keys, load-redis rebuilds them from Postgres
// and from the persist jobs still in flight.
func TestLoadRedisRestoresAfterLoss(t *testing.T) {
	t.Parallel()
	b := setupCouponCLI(t)
	ctx := context.Background()
	code := b.code(t, "LOSS")
	exit, _, stderr := b.run(t, "coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "10")
	require.Equal(t, 0, exit, stderr)
	c, err := b.store.CouponByCode(ctx, code)
	require.NoError(t, err)
	for m := int64(1); m <= 4; m++ {
		_, err := b.gate.Issue(ctx, code, m)
		require.NoError(t, err)
		_, err = b.store.PersistCouponIssue(ctx, code, m, time.Now())
		require.NoError(t, err)
	}
	// Member 5 is in flight: seat taken, job not run yet.
	_, err = b.gate.Issue(ctx, code, 5)
	require.NoError(t, err)
	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{}, b.deps(t))
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.CouponIssuePersistArgs{CouponCode: code, MemberID: 5}, nil)
	require.NoError(t, err)

	require.NoError(t, b.rdb.Del(ctx, b.gate.StockKey(code), b.gate.IssuedKey(code)).Err())
	res, err := b.gate.Issue(ctx, code, 6)
	require.NoError(t, err)
	require.Equal(t, coupongate.NotLoaded, res)

	exit, stdout, stderr := b.run(t, "coupon", "load-redis", "--code", code)
	require.Equal(t, 0, exit, stderr)
	require.Contains(t, stdout, "stock 5 of 10")
	st, err := b.gate.State(ctx, code)
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{1, 2, 3, 4, 5}, st.Members)
	require.EqualValues(t, 5, st.Stock)

	// The reconcile check now finds agreement (and re-syncs issued_quantity).
	exit, stdout, stderr = b.run(t, "reconcile", "--check", "coupon")
	require.Equal(t, 0, exit, stderr)
	var rep jobs.CouponsReport
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	require.Len(t, rep.Coupons, 1)
	require.Zero(t, rep.Coupons[0].RolledBack)
	require.Zero(t, rep.Coupons[0].AddedBack)
	require.Equal(t, 1, rep.Coupons[0].KeptInFlight)
	require.Equal(t, 4, rep.Coupons[0].IssuedQtyNow)
	require.Equal(t, 4, b.count(t, `SELECT issued_quantity FROM coupon WHERE id = $1`, c.ID))
}

func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	b := setupCouponCLI(t)
	ctx := context.Background()

	for _, args := range [][]string{{"reconcile"}, {"reconcile", "--check", "nope"}, {"reconcile", "--check", "coupon", "--dry"}} {
		exit, _, stderr := b.run(t, args...)
		require.Equal(t, 2, exit, "%v: %s", args, stderr)
	}
	_, _, stderr := b.run(t, "reconcile", "--check", "nope")
	require.Contains(t, stderr, `unknown check "nope"; want one of coupon, orders, therapy`)

	// A drifted therapy_statistics row: --dry-run reports it and enqueues
	// nothing; the real check re-enqueues its aggregation.
	_, err := b.pool.Exec(ctx, `
		INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE'), (2, 'ACTIVE');
		INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
		VALUES (1, '2026-10-05T10:00:00+09:00', 600, true), (1, '2026-10-06T10:00:00+09:00', 300, false),
		       (2, '2026-10-07T10:00:00+09:00', 60, true);
		INSERT INTO therapy_statistics (therapy_user_id, year, month, perform_count, completed_count,
		    total_duration_seconds, active_days, first_performed_at, last_performed_at, aggregated_at)
		VALUES (1, 2026, 10, 1, 1, 600, 1, '2026-10-05T10:00:00+09:00', '2026-10-05T10:00:00+09:00', now()),
		       (2, 2026, 10, 1, 1, 60, 1, '2026-10-07T10:00:00+09:00', '2026-10-07T10:00:00+09:00', now());`)
	require.NoError(t, err)
	exit, stdout, stderr := b.run(t, "reconcile", "--check", "therapy", "--dry-run")
	require.Equal(t, 0, exit, stderr)
	var rep jobs.TherapyVerifyReport
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	require.Equal(t, 2, rep.Checked)
	require.Equal(t, 1, rep.Drifted)
	require.EqualValues(t, 1, rep.Drifts[0].TherapyUserID)
	require.Equal(t, 2, rep.Drifts[0].ActualCount)
	require.Zero(t, rep.Reenqueued)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river_job`))

	exit, stdout, stderr = b.run(t, "reconcile", "--check", "therapy")
	require.Equal(t, 0, exit, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	require.Equal(t, 1, rep.Reenqueued)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'therapy_stats'
		AND (args->>'therapy_user_id')::int = 1 AND args->>'trigger' = 'verify'`))
}

func TestCouponExchangeCommand(t *testing.T) {
	t.Parallel()
	b := setupCouponCLI(t)
	ctx := context.Background()
	old, err := b.store.CreateCoupon(ctx, store.NewCoupon{Code: b.code(t, "OLD"), Name: "old", AmountType: "FIX", Amount: 1,
		TotalQuantity: 10, Status: store.CouponInactive})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO coupon_issue (coupon_id, member_id) SELECT $1, m FROM generate_series(1, 10) m`, old.ID)
	require.NoError(t, err)
	oldID := strconv.FormatInt(old.ID, 10)
	good := []string{"coupon-exchange", "--name", "보상 쿠폰", "--description", "배송 오류로 인한 쿠폰 교환", "--amount-type", "RATE", "--amount", "100", "--expired-coupon-id", oldID}

	bad := [][]string{
		{"coupon-exchange", "--description", "d", "--amount-type", "FIX", "--amount", "1", "--expired-coupon-id", oldID},
		{"coupon-exchange", "--name", "n", "--amount-type", "PCT", "--amount", "1", "--expired-coupon-id", oldID},
		{"coupon-exchange", "--name", "n", "--amount-type", "FIX", "--amount", "-1", "--expired-coupon-id", oldID},
		{"coupon-exchange", "--name", "n", "--amount-type", "RATE", "--amount", "200", "--expired-coupon-id", oldID},
		{"coupon-exchange", "--name", "n", "--amount-type", "FIX", "--amount", "1"},
		{"coupon-exchange", "--name", "n", "--amount-type", "FIX", "--amount", "1", "--expired-coupon-id", "abc"},
		{"coupon-exchange", "--name", "n", "--amount-type", "FIX", "--amount", "1", "--expired-coupon-id", "999999"},
		{"coupon-exchange", "--name", "n", "--amount-type", "FIX", "--amount", "1", "--expired-coupon-id", oldID, "--chunk-size", "0"},
		{"coupon-exchange", "--name", strings.Repeat("n", 201), "--amount-type", "FIX", "--amount", "1", "--expired-coupon-id", oldID},
		{"coupon-exchange", "--name", "\u202eevil", "--amount-type", "FIX", "--amount", "1", "--expired-coupon-id", oldID},
		{"coupon-exchange", "--name", "n", "--description", "@SUM(A1)", "--amount-type", "FIX", "--amount", "1", "--expired-coupon-id", oldID},
	}
	for _, args := range bad {
		exit, _, stderr := b.run(t, args...)
		require.Equal(t, 2, exit, "%v: %s", args, stderr)
	}
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river_job`))

	exit, stdout, stderr := b.run(t, good...)
	require.Equal(t, 0, exit, stderr)
	require.Contains(t, stdout, "enqueued")
	// A concurrent duplicate (the first is still queued) is refused.
	exit, _, stderr = b.run(t, good...)
	require.Equal(t, 3, exit, "already ran")
	require.Contains(t, stderr, ": already queued as job ")

	client, err := jobs.NewClient(b.pool, jobs.ClientConfig{Queues: map[string]int{"default": 2}, Retention: 24 * time.Hour,
		RescueAfter: 90 * time.Second, FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond}, b.deps(t))
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	testkit.WaitFor(t, 20*time.Second, "the exchange completed", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_exchange' AND state = 'completed'`) > 0, nil
	})
	require.Equal(t, 10, b.count(t, `SELECT count(*) FROM coupon_notification`))

	// The same identifying parameters after a completed run: refused, nothing
	// changed. A different chunk size is not identifying: still refused.
	exit, _, stderr = b.run(t, good...)
	require.Equal(t, 3, exit, "already ran")
	require.Contains(t, stderr, "already completed")
	exit, _, _ = b.run(t, append(good, "--chunk-size", "7")...)
	require.Equal(t, 3, exit)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_exchange'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupon WHERE code LIKE 'EXCH-%'`))

	// Once River's cleaner has taken the completed job out of river_job, the
	// same parameters are still refused with the same message, and nothing
	// is enqueued.
	require.Equal(t, int64(1), testkit.RunCleaner(t, b.pool))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_exchange'`))
	exit, _, stderr = b.run(t, good...)
	require.Equal(t, 3, exit)
	require.Regexp(t, `coupon_exchange amount=\d+, amount_type="\w+", description=".*", expired_coupon_id=\d+, name=".*": already completed as job \d+ at `, stderr)
	require.Contains(t, stderr, "use --rerun to run it again")
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_exchange'`))

	// --rerun runs it again: nothing is left to exchange, so no member gets
	// a second compensation or notification.
	exit, stdout, stderr = b.run(t, append(good, "--rerun")...)
	require.Equal(t, 0, exit, stderr)
	require.Contains(t, stdout, "enqueued")
	testkit.WaitFor(t, 20*time.Second, "the rerun completed", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'coupon_exchange' AND state = 'completed' AND args ->> 'rerun' = '1'`) == 1, nil
	})
	require.Equal(t, 10, b.count(t, `SELECT count(*) FROM coupon_notification`))
	require.Equal(t, 10, b.count(t, `SELECT count(*) FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id WHERE c.code LIKE 'EXCH-%'`))
	// The rerun is refused in its turn.
	exit, _, stderr = b.run(t, good...)
	require.Equal(t, 3, exit, "already ran")
	require.Contains(t, stderr, "already completed")

	// Change an identifying parameter and it runs (nothing left to exchange).
	changed := append([]string{}, good...)
	changed[len(changed)-3] = "99"
	exit, _, stderr = b.run(t, changed...)
	require.Equal(t, 0, exit, stderr)
}

func TestCouponExpireEndsTheCouponOnce(t *testing.T) {
	t.Parallel()
	b := setupCouponCLI(t)
	code := b.code(t, "EXP")

	for _, args := range [][]string{
		{"coupon", "expire"},
		{"coupon", "expire", "--code", "bad code!"},
		{"coupon", "expire", "--code", code},
	} {
		exit, stdout, stderr := b.run(t, args...)
		require.Equal(t, 2, exit, "%v: %s", args, stderr)
		require.Empty(t, stdout, "%v", args)
	}

	exit, _, stderr := b.run(t, "coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "100", "--total", "5",
		"--expires-at", time.Now().Add(24*time.Hour).Format(time.RFC3339))
	require.Equal(t, 0, exit, stderr)
	c, err := b.store.CouponByCode(context.Background(), code)
	require.NoError(t, err)
	before := time.Now()
	exit, stdout, stderr := b.run(t, "coupon", "expire", "--code", code)
	require.Equal(t, 0, exit, stderr)
	require.Contains(t, stdout, "coupon "+code+" (id "+strconv.FormatInt(c.ID, 10)+") expired at ")
	require.Contains(t, stdout, "with 0 of 5 issued; exchange its unused issues with coupon-exchange --expired-coupon-id "+strconv.FormatInt(c.ID, 10)+"\n")
	c, err = b.store.CouponByCode(context.Background(), code)
	require.NoError(t, err)
	require.NotNil(t, c.ExpiresAt)
	require.WithinDuration(t, before, *c.ExpiresAt, 5*time.Second)
	require.Equal(t, store.CouponActive, c.Status)

	// Expiring again keeps the first expiry.
	exit, _, stderr = b.run(t, "coupon", "expire", "--code", code)
	require.Equal(t, 0, exit, stderr)
	again, err := b.store.CouponByCode(context.Background(), code)
	require.NoError(t, err)
	require.True(t, c.ExpiresAt.Equal(*again.ExpiresAt), "%v then %v", c.ExpiresAt, again.ExpiresAt)
}
