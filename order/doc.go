// Package order holds the rules of an outbound order request: what an
// operator or API client gives (Request), its check (Request.Validate, whose
// refusal is an *InputError naming the field), and the states of the
// at-most-once protocol that sends it to the third party, and the orders
// file the CLI reads (ReadCSV: one request a line, the first bad line named,
// a line's length bounded). The CLI, the HTTP
// API, the store and the jobs use these, so a request one of them accepts is
// one the others accept too.
//
// A request's status moves
//
//	PENDING → SENDING → APPLIED | FAILED
//
// Who moves a request into each status:
//
//   - Pending: the request is inserted with its order_submit job, in one
//     transaction (jobs.CreateOrderRequests, for `enqueue orders` and
//     POST /v1/order-requests); nothing is sent yet.
//   - Sending: order_submit's claim commits it, under the row's lock, before
//     any call to the third party. A claim finding it Sending already means
//     an earlier attempt's outcome is unknown: that attempt looks the order
//     up before it posts.
//   - Applied: order_submit commits it with the third party's order id and
//     time once the third party holds the order (a 201, or a lookup that
//     finds it); order_reconcile commits it for a Sending row whose order it
//     finds at the third party. It is final.
//   - Failed: order_submit commits it when the third party refuses the
//     request with a 4xx no retry can fix, and cancels the job. An operator
//     who re-queues the cancelled job (enqueue retry --kind order_submit
//     --state cancelled) has it claimed Sending again, looked up first.
//
// The statuses are the strings stored in order_request.status and served by
// the API.
package order
