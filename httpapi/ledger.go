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

func (s *Server) reprocessLedger(w http.ResponseWriter, r *http.Request) {
	var req ReprocessRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if len(req.LedgerIDs) == 0 {
		s.writeErr(w, r, badField("ledgerIds", "required: a non-empty array of ledger ids"))
		return
	}
	if len(req.LedgerIDs) > maxReprocessIDs {
		s.writeErr(w, r, badField("ledgerIds", "at most %d ids per request", maxReprocessIDs))
		return
	}
	seen := make(map[int64]bool, len(req.LedgerIDs))
	ids := make([]int64, 0, len(req.LedgerIDs))
	for _, id := range req.LedgerIDs {
		if id <= 0 {
			s.writeErr(w, r, badField("ledgerIds", "%d is not a positive id", id))
			return
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	on := calendar.NextBusinessDate(time.Now(), s.TZ)
	if req.On != nil {
		if _, err := calendar.ParseDate(*req.On); err != nil {
			s.writeErr(w, r, badField("on", "%v", err))
			return
		}
		on = *req.On
	}
	err := s.Store.ReprocessLedger(r.Context(), ids, on)
	var le *store.LedgerRowsError
	switch {
	case errors.As(err, &le) && le.Unknown:
		s.writeErr(w, r, &fieldError{status: http.StatusNotFound, field: "ledgerIds", msg: le.Error()})
	case errors.As(err, &le):
		s.writeErr(w, r, &fieldError{status: http.StatusConflict, field: "ledgerIds", msg: le.Error()})
	case err != nil:
		s.writeErr(w, r, err)
	default:
		writeJSON(w, http.StatusOK, ReprocessResponse{LedgerIDs: ids, ProcessOn: on})
	}
}
