package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/store"
)

// ReprocessRequest asks for processed ledger rows to be collected again by
// the run of date On (default: the next business date in BATCH_TZ).
type ReprocessRequest struct {
	LedgerIDs []int64 `json:"ledgerIds"`
	On        *string `json:"on"`
}

// ReprocessResponse answers an accepted reprocess request.
type ReprocessResponse struct {
	LedgerIDs []int64 `json:"ledgerIds"`
	ProcessOn string  `json:"processOn"`
}

// maxReprocessIDs bounds one request.
const maxReprocessIDs = 10_000

func (s *Server) reprocessLedger(r *http.Request, req ReprocessRequest) (ReprocessResponse, error) {
	if len(req.LedgerIDs) == 0 {
		return ReprocessResponse{}, badField("ledgerIds", "required: a non-empty array of ledger ids")
	}
	if len(req.LedgerIDs) > maxReprocessIDs {
		return ReprocessResponse{}, badField("ledgerIds", "at most %d ids per request", maxReprocessIDs)
	}
	seen := make(map[int64]bool, len(req.LedgerIDs))
	ids := make([]int64, 0, len(req.LedgerIDs))
	for _, id := range req.LedgerIDs {
		if id <= 0 {
			return ReprocessResponse{}, badField("ledgerIds", "%d is not a positive id", id)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	on := calendar.NextBusinessDate(time.Now(), s.TZ)
	if req.On != nil {
		if _, err := calendar.ParseDate(*req.On); err != nil {
			return ReprocessResponse{}, badField("on", "%v", err)
		}
		on = *req.On
	}
	err := s.Store.ReprocessLedger(r.Context(), ids, on)
	var le *store.LedgerRowsError
	switch {
	case errors.As(err, &le) && le.Unknown:
		return ReprocessResponse{}, &fieldError{status: http.StatusNotFound, field: "ledgerIds", msg: le.Error()}
	case errors.As(err, &le):
		return ReprocessResponse{}, &fieldError{status: http.StatusConflict, field: "ledgerIds", msg: le.Error()}
	case err != nil:
		return ReprocessResponse{}, err
	}
	return ReprocessResponse{LedgerIDs: ids, ProcessOn: on}, nil
}
