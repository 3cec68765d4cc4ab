package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"riverqueue.com/riverui"

	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/jobs"
)

// riverUIPrefix is where River UI is served, batchUIPath the batch page.
const (
	riverUIPrefix = "/riverui"
	batchUIPath   = "/ui/"
)

// The listener's limits: a client must send its headers within
// readHeaderTimeout and its whole request within readTimeout (a body sent a
// byte every few seconds is cut), an answer must be written within
// writeTimeout (River UI and /metrics included), an idle keep-alive
// connection is closed after idleTimeout.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 20 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
)

// routes is the worker's HTTP listener: the API (health, readiness, /v1/),
// /metrics, and for operators River UI under /riverui/ and the batch page at
// /ui/. Callers guards each.
func routes(api, metrics, riverUI, batchUI http.Handler, c *httpapi.Callers) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle("GET /metrics", c.Metrics(metrics))
	mux.Handle(riverUIPrefix+"/", httpapi.NoFraming(c.Page(c.RecordRiverUI(riverUIPrefix, riverUI))))
	mux.Handle(batchUIPath, httpapi.NoFraming(c.Page(exactPath(batchUIPath, batchUI))))
	return httpapi.Nosniff(mux)
}

// startRiverUI builds River UI on the worker's own client and starts its
// count caches, which stop when ctx is done. Without operators the UI is
// off: nothing is built and the path answers 404.
func startRiverUI(ctx context.Context, client *jobs.Client, logger *slog.Logger, operators int) (http.Handler, error) {
	if operators == 0 {
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
