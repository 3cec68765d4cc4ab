# tidemark — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SERVICES := eval "$$(scripts/services.sh)"
BIN := bin

.PHONY: help build run serve test bench chaos lint migrate services

help:
	@echo "make run    start services, migrate, load demo data, run the daily therapy batch, print a summary"
	@echo "make test   the whole test suite against real Postgres and Redis (started if needed)"
	@echo "make bench  benchmarks (prints figures and ratios)"
	@echo "make serve  run the worker in the foreground (Ctrl-C stops it gracefully)"
	@echo "make lint   gofmt + go vet"

build:
	go build -o $(BIN)/ ./cmd/...

services:
	@scripts/services.sh >/dev/null

migrate: build
	@$(SERVICES) && $(BIN)/worker migrate

run: build
	@scripts/run.sh

serve: build
	@$(SERVICES) && $(BIN)/worker migrate && exec $(BIN)/worker

test:
	@$(SERVICES) && go vet ./... && go test -count=1 -timeout 12m -p 2 ./...

bench: build
	@$(SERVICES) && $(BIN)/bench

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)
	go vet ./...
