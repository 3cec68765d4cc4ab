package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"riverqueue.com/riverui"

	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/jobs"
)

// riverUIPrefix is where River UI is served, batchUIPath the batch page.
const (
	riverUIPrefix = "/riverui"
	batchUIPath   = "/ui/"
)

// routes is the worker's HTTP listener: the API (health, readiness, /v1/),
// /metrics (numbers only, no token), and behind ADMIN_TOKEN River UI under
// /riverui/ and the batch page at /ui/.
func routes(api, metrics, riverUI, batchUI http.Handler, adminToken string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle("GET /metrics", metrics)
	mux.Handle(riverUIPrefix+"/", httpapi.RequireAdmin(adminToken, riverUI))
	mux.Handle(batchUIPath, httpapi.RequireAdmin(adminToken, exactPath(batchUIPath, batchUI)))
	return mux
}

// startRiverUI builds River UI on the worker's own client and starts its
// count caches, which stop when ctx is done. Without ADMIN_TOKEN the UI is
// off: nothing is built and the path answers 404.
func startRiverUI(ctx context.Context, client *jobs.Client, logger *slog.Logger, adminToken string) (http.Handler, error) {
	if adminToken == "" {
		return http.NotFoundHandler(), nil
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    riverUIPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("river ui: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("river ui: start: %w", err)
	}
	return h, nil
}

// exactPath serves h at path only, 404 below it.
func exactPath(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
