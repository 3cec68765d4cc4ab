#!/usr/bin/env bash
# run.sh — `make run`: the main job on local defaults, as a new user sees it.
# Starts what is needed, migrates, loads demo data, starts a worker, runs the
# daily therapy batch, waits for it, prints a summary, and stops the worker.
set -euo pipefail
cd "$(dirname "$0")/.."
user_db=${DATABASE_URL:-}
eval "$(scripts/services.sh)"
if [ -z "$user_db" ]; then
  # Keep the demo in a database of its own on the server found.
  psql "$DATABASE_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'tidemark'" | grep -q 1 ||
    psql "$DATABASE_URL" -qc "CREATE DATABASE tidemark"
  query=""; [[ $DATABASE_URL == *\?* ]] && query="?${DATABASE_URL#*\?}"
  base=${DATABASE_URL%%\?*}
  export DATABASE_URL="${base%/*}/tidemark$query"
fi
export BATCH_TZ=${BATCH_TZ:-Asia/Seoul}
export HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
export ADMIN_TOKEN=${ADMIN_TOKEN:-local-admin-token}
mkdir -p .local

echo "== migrate"
bin/worker migrate 2>&1 | sed 's/^/   /'
echo "== demo data"
bin/enqueue demo-data --users "${DEMO_USERS:-2000}" --performs 30 | sed 's/^/   /'

echo "== worker (log: .local/worker.log)"
PERIODIC_JOBS=false bin/worker >.local/worker.log 2>&1 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null 2>&1 && break
  kill -0 $worker 2>/dev/null || { echo "worker exited; see .local/worker.log"; tail -5 .local/worker.log; exit 1; }
  sleep 0.1
done

today=$(TZ=$BATCH_TZ date +%F)
month=$(TZ=$BATCH_TZ date -d "$today -1 day" +%Y-%m)
echo "== daily therapy batch for business date $today (aggregates $month)"
bin/enqueue therapy-daily --date "$today" | sed 's/^/   /'
start=$(date +%s%N)
bin/enqueue wait --timeout 5m
echo "   all jobs done in $(( ($(date +%s%N) - start) / 1000000 )) ms"

echo "== summary"
bin/enqueue therapy-report --month "$month" | sed 's/^/   /'
echo
bin/enqueue status | sed 's/^/   /'
echo
echo "== try it"
echo "   curl 'http://$HTTP_ADDR/v1/therapy-statistics?therapyUserId=1&yearMonth=$month'"
curl -fsS "http://$HTTP_ADDR/v1/therapy-statistics?therapyUserId=1&yearMonth=$month" | sed 's/^/   /'
echo "   audit: psql \"$DATABASE_URL\" -c \"SELECT status, count(*) FROM therapy_batch_log GROUP BY status\""
echo "   keep a worker running: make serve"
