package partnersim

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/internal/combine"
)

// orderInserter stores the orders of POSTs that arrive together in one
// INSERT statement and one commit (group commit), as a busy real service
// would; each request is still answered on its own, and only after the
// statement holding its row has committed. The unique constraint decides
// every conflict, within one batch too: ON CONFLICT DO NOTHING keeps the
// first row for a user and month, and the others get a 409.
//
// With a latency set, a POST is answered only that long after it arrived,
// so its insert can wait a little for others to join it without delaying
// the answer: the batch is taken insertLinger after the first of them
// arrived. Without a latency nothing waits.
//
// The simulator shares the machine with the system under test in the
// benchmark: one statement per POST would cost a round trip and a commit per
// call, taken from the system being measured.
type orderInserter struct {
	c *combine.Combiner[*insertReq]
}

type insertReq struct {
	username, month string
	price           int64

	order  Order
	stored bool // false: the user already had an order for that month
}

func newOrderInserter(pool *pgxpool.Pool, linger func() time.Duration) *orderInserter {
	return &orderInserter{c: combine.New(2, 256, func(ctx context.Context, batch []*insertReq) error {
		return insertOrders(ctx, pool, batch)
	}).WithLinger(linger)}
}

// insertLinger is how long an insert waits for others at a given latency: a
// quarter of it, at most 5 ms, so the statement (about a millisecond on a
// busy machine) is done well before the answer is due.
func insertLinger(latency time.Duration) time.Duration {
	return min(latency/4, maxInsertLinger)
}

const maxInsertLinger = 5 * time.Millisecond

// insert stores one order, or reports (stored false) that the user already
// has one for that month.
func (in *orderInserter) insert(ctx context.Context, username string, price int64, month string) (Order, bool, error) {
	r := &insertReq{username: username, price: price, month: month}
	if err := in.c.Do(ctx, r); err != nil {
		return Order{}, false, err
	}
	return r.order, r.stored, nil
}

func insertOrders(ctx context.Context, pool *pgxpool.Pool, batch []*insertReq) error {
	users := make([]string, len(batch))
	prices := make([]int64, len(batch))
	months := make([]string, len(batch))
	for i, r := range batch {
		users[i], prices[i], months[i] = r.username, r.price, r.month
		r.stored = false
	}
	rows, err := pool.Query(ctx, `
		INSERT INTO thirdparty.orders (username, total_price, applied_year_month)
		SELECT username, price, month
		FROM unnest($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY AS i(username, price, month, ord)
		ORDER BY ord
		ON CONFLICT (username, applied_year_month) DO NOTHING
		RETURNING id, username, total_price, applied_year_month, created_at`, users, prices, months)
	if err != nil {
		return fmt.Errorf("insert %d orders: %w", len(batch), err)
	}
	stored := make(map[[2]string]Order, len(batch))
	var o Order
	if _, err := pgx.ForEachRow(rows, []any{&o.ID, &o.Username, &o.TotalPrice, &o.AppliedYearMonth, &o.CreatedAt}, func() error {
		stored[[2]string{o.Username, o.AppliedYearMonth}] = o
		return nil
	}); err != nil {
		return fmt.Errorf("insert %d orders: %w", len(batch), err)
	}
	for _, r := range batch {
		key := [2]string{r.username, r.month}
		if o, ok := stored[key]; ok {
			delete(stored, key) // a second request for it in this batch gets a 409
			r.order, r.stored = o, true
		}
	}
	return nil
}
