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

// riverUIPrefix is where River UI is served.
const riverUIPrefix = "/riverui"

// routes is the worker's HTTP listener: the API (health, readiness, /v1/),
// /metrics (numbers only, no token), and River UI under /riverui/ behind
// ADMIN_TOKEN.
func routes(api, metrics, riverUI http.Handler, adminToken string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle("GET /metrics", metrics)
	mux.Handle(riverUIPrefix+"/", httpapi.RequireAdmin(adminToken, riverUI))
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
