package order

// Statuses of an order request, as order_request.status stores them.
const (
	Pending = "PENDING" // inserted with its order_submit job; not sent yet
	Sending = "SENDING" // an attempt committed this before calling; the outcome may be unknown
	Applied = "APPLIED" // the third party holds the order; external id and time are set
	Failed  = "FAILED"  // the third party refused it with a 4xx no retry can fix
)

// Statuses returns every status in the protocol's order, for reports that
// list each one, even at zero.
func Statuses() []string { return []string{Pending, Sending, Applied, Failed} }
