package coupongate_test

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testredis"
)

// A coupon with two seats: the gate lets two members through, refuses a
// member twice, and answers sold out after that. Undo gives a seat back.
func ExampleGate() {
	ctx := context.Background()
	opt, _ := redis.ParseURL(testredis.URL())
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	gate := coupongate.New(rdb, "example:")
	_ = gate.Unload(ctx, "WELCOME")   // start clean
	defer gate.Unload(ctx, "WELCOME") //nolint:errcheck

	stock, _ := gate.Load(ctx, "WELCOME", 2, nil) // total 2, nobody issued yet
	fmt.Println("stock", stock)
	for _, member := range []int64{7, 7, 8, 9} {
		res, _ := gate.Issue(ctx, "WELCOME", member)
		fmt.Println(member, res)
	}
	_, _ = gate.Undo(ctx, "WELCOME", 8) // e.g. its persist job failed for good
	res, _ := gate.Issue(ctx, "WELCOME", 9)
	fmt.Println(9, res)
	// Output:
	// stock 2
	// 7 issued
	// 7 already issued
	// 8 issued
	// 9 sold out
	// 9 issued
}
