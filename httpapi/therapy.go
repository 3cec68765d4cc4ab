package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// getTherapyStatistics answers one user's statistics for one month: a
// member's own (therapyUserId may be left out; another's is 403), anyone's
// for an operator.
func (s *Server) getTherapyStatistics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	caller, _ := CallerOf(r.Context())
	given := q.Get("therapyUserId")
	if given == "" && caller.Member > 0 {
		given = strconv.FormatInt(caller.Member, 10)
	}
	userID, err := positiveID("therapyUserId", given)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if caller.Operator == nil && (caller.Member <= 0 || caller.Member != userID) {
		writeError(w, http.StatusForbidden, "therapyUserId", "a member can read only their own statistics")
		return
	}
	year, month, err := calendar.ParseYearMonth(q.Get("yearMonth"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "yearMonth", err.Error())
		return
	}
	stats, err := s.Store.GetTherapyStatistics(r.Context(), userID, year, month)
	writeFound(s, w, r, stats, err, "", "no statistics for that user and month", newTherapyStatisticsResponse)
}

// TherapyStatisticsResponse answers GET /v1/therapy-statistics: one user's
// statistics for one month.
type TherapyStatisticsResponse struct {
	TherapyUserID        int64      `json:"therapyUserId"`
	Year                 int        `json:"year"`
	Month                int        `json:"month"`
	PerformCount         int        `json:"performCount"`
	CompletedCount       int        `json:"completedCount"`
	TotalDurationSeconds int64      `json:"totalDurationSeconds"`
	ActiveDays           int        `json:"activeDays"`
	FirstPerformedAt     *time.Time `json:"firstPerformedAt"`
	LastPerformedAt      *time.Time `json:"lastPerformedAt"`
	AggregatedAt         time.Time  `json:"aggregatedAt"`
}

// newTherapyStatisticsResponse converts the row, as newOrderRequestResponse
// does.
func newTherapyStatisticsResponse(t store.TherapyStatistics) TherapyStatisticsResponse {
	return TherapyStatisticsResponse(t)
}

// RecoverRequest is the recover endpoint's body.
type RecoverRequest struct {
	TherapyUserID *int64  `json:"therapyUserId"`
	YearMonth     *string `json:"yearMonth"`
	StartDateTime *string `json:"startDateTime"`
	EndDateTime   *string `json:"endDateTime"`
}

// RecoverResponse answers an accepted recover request.
type RecoverResponse struct {
	JobID         int64  `json:"jobId"`
	TherapyUserID int64  `json:"therapyUserId"`
	YearMonth     string `json:"yearMonth"`
}

func (s *Server) recoverTherapyStatistics(r *http.Request, req RecoverRequest) (RecoverResponse, error) {
	args, err := s.validateRecover(r, req)
	if err != nil {
		return RecoverResponse{}, err
	}
	res, err := s.River.Insert(r.Context(), args, nil)
	if err != nil {
		return RecoverResponse{}, err
	}
	return RecoverResponse{JobID: res.Job.ID, TherapyUserID: args.TherapyUserID, YearMonth: *req.YearMonth}, nil
}

func (s *Server) validateRecover(r *http.Request, req RecoverRequest) (jobs.TherapyStatsArgs, error) {
	if req.TherapyUserID == nil {
		return jobs.TherapyStatsArgs{}, badField("therapyUserId", "required")
	}
	if *req.TherapyUserID <= 0 {
		return jobs.TherapyStatsArgs{}, badField("therapyUserId", "want a positive integer")
	}
	if req.YearMonth == nil {
		return jobs.TherapyStatsArgs{}, badField("yearMonth", "required")
	}
	year, month, err := calendar.ParseYearMonth(*req.YearMonth)
	if err != nil {
		return jobs.TherapyStatsArgs{}, badField("yearMonth", "%v", err)
	}
	start, end := calendar.MonthBounds(year, month, s.TZ)
	var from, to *time.Time
	for _, f := range []struct {
		name string
		in   *string
		out  **time.Time
	}{{"startDateTime", req.StartDateTime, &from}, {"endDateTime", req.EndDateTime, &to}} {
		if f.in == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339, *f.in)
		if err != nil {
			return jobs.TherapyStatsArgs{}, badField(f.name, "malformed date-time %q: want RFC 3339 with an offset, like 2026-11-01T00:00:00+09:00", *f.in)
		}
		*f.out = &t
	}
	inMonth := func(field string, t *time.Time) error {
		if t != nil && (t.Before(start) || !t.Before(end)) {
			return badField(field, "%s is outside %s, which is [%s, %s) in %s", t.Format(time.RFC3339), *req.YearMonth,
				start.Format(time.RFC3339), end.Format(time.RFC3339), s.TZ)
		}
		return nil
	}
	if err := inMonth("startDateTime", from); err != nil {
		return jobs.TherapyStatsArgs{}, err
	}
	if err := inMonth("endDateTime", to); err != nil {
		return jobs.TherapyStatsArgs{}, err
	}
	if from != nil && to != nil && to.Before(*from) {
		return jobs.TherapyStatsArgs{}, badField("endDateTime", "is before startDateTime")
	}
	missing, err := s.Store.MissingTherapyUsers(r.Context(), []int64{*req.TherapyUserID})
	if err != nil {
		return jobs.TherapyStatsArgs{}, err
	}
	if len(missing) > 0 {
		return jobs.TherapyStatsArgs{}, &fieldError{status: http.StatusNotFound, field: "therapyUserId", msg: "unknown therapy user " + strconv.FormatInt(*req.TherapyUserID, 10)}
	}
	now := time.Now()
	return jobs.TherapyStatsArgs{
		TherapyUserID: *req.TherapyUserID, Year: year, Month: month,
		BusinessDate:  calendar.BusinessDate(now, s.TZ),
		RecoverID:     now.UTC().Format(time.RFC3339Nano),
		Trigger:       jobs.TriggerRecover,
		StartDateTime: from, EndDateTime: to,
	}, nil
}
