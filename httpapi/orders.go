package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/redact"
	"github.com/tidemark/tidemark/store"
)

// OrderRequestBody is the body of POST /v1/order-requests, in the third
// party's own field names.
type OrderRequestBody struct {
	Username         *string `json:"username"`
	TotalPrice       *int64  `json:"totalPrice"`
	AppliedYearMonth *string `json:"appliedYearMonth"`
}

// OrderRequestAccepted answers an accepted order request.
type OrderRequestAccepted struct {
	ID     int64  `json:"id"`
	JobID  int64  `json:"jobId"`
	Status string `json:"status"`
}

// jsonField maps order.Request's field names to the API's.
var jsonField = map[string]string{
	"username": "username", "total_price": "totalPrice", "applied_year_month": "appliedYearMonth",
}

// createOrderRequest inserts one order_request row and its order_submit job
// in one transaction: 202 with the row's id, 409 when the user already has a
// request for that month, 400 naming the field at fault.
func (s *Server) createOrderRequest(r *http.Request, b OrderRequestBody) (OrderRequestAccepted, error) {
	switch {
	case b.Username == nil:
		return OrderRequestAccepted{}, badField("username", "required")
	case b.TotalPrice == nil:
		return OrderRequestAccepted{}, badField("totalPrice", "required")
	case b.AppliedYearMonth == nil:
		return OrderRequestAccepted{}, badField("appliedYearMonth", "required")
	}
	in := order.Request{Username: *b.Username, TotalPrice: *b.TotalPrice, AppliedYearMonth: *b.AppliedYearMonth}
	var ie *order.InputError
	if err := in.Validate(); errors.As(err, &ie) {
		return OrderRequestAccepted{}, badField(jsonField[ie.Field], "%s", ie.Msg)
	}
	created, err := jobs.CreateOrderRequests(r.Context(), s.River, s.Store, []order.Request{in})
	var dup *store.DuplicateOrderRequestError
	if errors.As(err, &dup) {
		return OrderRequestAccepted{}, &fieldError{status: http.StatusConflict, field: "username", msg: dup.Error()}
	}
	if err != nil {
		return OrderRequestAccepted{}, err
	}
	return OrderRequestAccepted{ID: created[0].ID, JobID: created[0].JobID, Status: order.Pending}, nil
}

// getOrderRequest answers one order_request row, or 404.
func (s *Server) getOrderRequest(w http.ResponseWriter, r *http.Request) {
	id, err := positiveID("id", r.PathValue("id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	row, err := s.Store.GetOrderRequest(r.Context(), id)
	writeFound(s, w, r, row, err, "id", "no such order request", newOrderRequestResponse)
}

// OrderRequestResponse answers GET /v1/order-requests/{id}: one order
// request and how far its call to the third party got.
type OrderRequestResponse struct {
	ID                int64      `json:"id"`
	Username          string     `json:"username"`
	TotalPrice        int64      `json:"totalPrice"`
	AppliedYearMonth  string     `json:"appliedYearMonth"`
	Status            string     `json:"status"`
	ExternalOrderID   *int64     `json:"externalOrderId"`
	ExternalCreatedAt *time.Time `json:"externalCreatedAt"`
	Attempts          int        `json:"attempts"`
	LastError         *string    `json:"lastError"`
	CreatedAt         time.Time  `json:"createdAt"`
	UpdatedAt         time.Time  `json:"updatedAt"`
}

// newOrderRequestResponse converts the row: the response has the row's
// fields, so a field added to the row does not compile here until the API
// decides about it. lastError is redacted again: a row written before
// store redacted it may quote the partner's URL with its credentials.
func newOrderRequestResponse(o store.OrderRequest) OrderRequestResponse {
	r := OrderRequestResponse(o)
	if r.LastError != nil {
		msg := redact.Text(*r.LastError)
		r.LastError = &msg
	}
	return r
}
