# tidemark — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SERVICES := eval "$$(scripts/services.sh)"
BIN := bin

.PHONY: help build run serve test bench chaos fuzz lint migrate services image

help:
	@echo "make run    start services, migrate, load demo data, run each of the five batches once, print a summary of each"
	@echo "make test   the whole test suite against real Postgres and Redis (started if needed)"
	@echo "make bench  benchmarks (prints figures and ratios)"
	@echo "make chaos  the whole fault suite, CHAOS_REPS (default 3) times per case; prints fault × batch → result"
	@echo "make serve  run the worker in the foreground (Ctrl-C stops it gracefully), ADMIN_TOKEN and MEMBER_JWT_SECRET as make run's"
	@echo "make fuzz   each parser's fuzz target for FUZZTIME (default 30s); make test runs their seed corpora"
	@echo "make lint   gofmt, go vet, staticcheck, govulncheck (when its database answers)"
	@echo "make image  bin/tidemark-image.tar, an OCI image archive built without a container daemon"

build:
	go build -buildvcs=auto -o $(BIN)/ ./cmd/...

# The image: static worker and enqueue, time zones built in, CA certificates,
# user 65532; reproducible (tools/image says how).
image:
	go run ./tools/image -o $(BIN)/tidemark-image.tar

services:
	@scripts/services.sh >/dev/null

migrate: build
	@$(SERVICES) && $(BIN)/worker migrate

run: build
	@scripts/run.sh

serve: build
	@user_db="$${DATABASE_URL:-}" && $(SERVICES) && export DATABASE_URL="$$(USER_DATABASE_URL=$$user_db scripts/demo-db.sh)" && \
		export ADMIN_TOKEN="$$(scripts/secret.sh ADMIN_TOKEN)" MEMBER_JWT_SECRET="$$(scripts/secret.sh MEMBER_JWT_SECRET)" && \
		$(BIN)/worker migrate && exec $(BIN)/worker

test:
	@$(SERVICES) && go vet ./... && go test -count=1 -timeout 12m -p 2 ./...

bench: build
	@$(SERVICES) && $(BIN)/bench

# The fault suite's every case, CHAOS_REPS times each at spread moments of the
# run; the whole log goes to .local/chaos.log, the table to the terminal.
chaos:
	@$(SERVICES) && mkdir -p .local && set -o pipefail && \
	  CHAOS_REPS=$${CHAOS_REPS:-3} go test -count=1 -timeout 80m -run TestFaults -v ./fault 2>&1 | tee .local/chaos.log | \
	  grep -E '^\| |^(ok|FAIL)|^\s*--- FAIL'

FUZZ_TARGETS := FuzzReadCSV:./order FuzzIDs:./internal/cliflag FuzzParseDate:./calendar \
	FuzzParseYearMonth:./calendar FuzzDecodeBodies:./httpapi FuzzParseTime:./bulk FuzzCheck:./usertext \
	FuzzRedactText:./redact FuzzParseOperators:./auth FuzzVerifyToken:./auth FuzzStrictClaims:./auth
fuzz:
	@$(SERVICES) && for t in $(FUZZ_TARGETS); do \
	  go test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $${FUZZTIME:-30s} "$${t#*:}" || exit 1; done

# staticcheck and govulncheck at pinned versions through the module proxy;
# govulncheck needs its database (vuln.go.dev) and says so when it is away.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)
	go vet ./...
	go run $(STATICCHECK) ./...
	@if curl -sfI --max-time 5 https://vuln.go.dev/index/db.json >/dev/null 2>&1; then \
	  go run $(GOVULNCHECK) ./...; \
	else echo "govulncheck skipped: its database, vuln.go.dev, does not answer from this machine"; fi
