#!/usr/bin/env bash
# run.sh — `make run`: every batch once, on demo data, as a new user sees it.
# Starts what is needed, migrates, loads demo data, starts the simulated order
# partner and a worker, runs the five batches one after another through the
# enqueue CLI and the HTTP API, prints two lines on each, then where to look.
# Both processes are stopped at the end. Every name a run creates (ledger rows,
# order users, coupons) is new, so it can run again on the same database.
set -euo pipefail
cd "$(dirname "$0")/.."
user_db=${DATABASE_URL:-}
eval "$(scripts/services.sh)"
DATABASE_URL=$(USER_DATABASE_URL=$user_db scripts/demo-db.sh)
export DATABASE_URL
export BATCH_TZ=${BATCH_TZ:-Asia/Seoul}
export HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
ADMIN_TOKEN=$(scripts/secret.sh ADMIN_TOKEN)
MEMBER_JWT_SECRET=$(scripts/secret.sh MEMBER_JWT_SECRET)
export ADMIN_TOKEN MEMBER_JWT_SECRET
mkdir -p .local
log=.local/run.log
: >"$log"
run_id=$(date -u +%Y%m%d%H%M%S)

# Each command's output goes to the log; a failure shows the log's end and stops.
fail() { echo "failed: $*; the last lines of $log:" >&2; tail -n 8 "$log" | sed 's/^/   /' >&2; exit 1; }
q() { "$@" >>"$log" 2>&1 || fail "$*"; }
# out prints a command's stdout (and logs it), for the summaries to read.
out() { local o; o=$("$@" 2>>"$log") || { echo "$o" >>"$log"; fail "$*"; }; echo "$o" >>"$log"; printf '%s\n' "$o"; }
sql() { psql "$DATABASE_URL" -AtqX -F ' ' -c "$1"; }
wait_jobs() { bin/enqueue wait --timeout 5m >>"$log" 2>&1 || fail "enqueue wait (see bin/enqueue status)"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

echo "== migrate, demo data (every command's output: $log)"
q bin/worker migrate
q bin/enqueue demo-data --users "${DEMO_USERS:-2000}" --performs 30

partner="" worker=""
stop() {
  local p
  for p in $worker $partner; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  return 0
}
trap stop EXIT

# The simulated partner on a free port, answering in 20 ms like a real one.
bin/thirdparty --addr 127.0.0.1:0 --latency 20ms >.local/thirdparty.log 2>&1 &
partner=$!
for _ in $(seq 100); do
  addr=$(sed -n 's/.*msg="thirdparty listening" addr=\([^ ]*\).*/\1/p' .local/thirdparty.log)
  [ -n "$addr" ] && break
  kill -0 $partner 2>/dev/null || { echo "thirdparty exited; see .local/thirdparty.log"; tail -5 .local/thirdparty.log; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "thirdparty did not start; see .local/thirdparty.log"; exit 1; }
export ORDER_API_URL="http://$addr"

if curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null 2>&1; then
  echo "something already answers on $HTTP_ADDR (a make serve?); stop it or set HTTP_ADDR"; exit 1
fi
PERIODIC_JOBS=false bin/worker >.local/worker.log 2>&1 &
worker=$!
for _ in $(seq 100); do
  curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null 2>&1 && break
  kill -0 $worker 2>/dev/null || { echo "worker exited; see .local/worker.log"; tail -5 .local/worker.log; exit 1; }
  sleep 0.1
done
echo "   worker on $HTTP_ADDR (log: .local/worker.log), simulated partner on $addr"

today=$(TZ=$BATCH_TZ date +%F)
month=$(TZ=$BATCH_TZ date -d "$today -1 day" +%Y-%m)

echo "== 1. therapy daily run for business date $today"
t0=$(now_ms)
# Exit 3: today's run exists (an earlier make run); its figures are shown.
o=$(bin/enqueue therapy-daily --date "$today" 2>&1) || [ $? -eq 3 ] || { echo "$o" >>"$log"; fail "enqueue therapy-daily --date $today"; }
echo "$o" >>"$log"
wait_jobs
ms=$(($(now_ms) - t0))
rep=$(out bin/enqueue therapy-report --month "$month" --top 0)
users=$(awk '/users aggregated/ {print $3}' <<<"$rep")
performs=$(awk '$1 == "performs" {print $2}' <<<"$rep")
blog=$(sed -n 's/^ *batch log (jobs) *//p' <<<"$rep")
if [[ $o == *": already "* ]]; then
  ran="already ran as job $(sed -n 's/.*as job \([0-9]*\).*/\1/p' <<<"$o"), not run again (unique on the date)"
else
  ran="job $(sed -n 's/.*: job \([0-9]*\) .*/\1/p' <<<"$o") fanned out and finished in $ms ms"
fi
echo "   therapy $today: $ran"
echo "   $users users aggregated for $month from $performs performs; batch log $blog"

echo "== 2. point settlement for $today"
q bin/enqueue demo-ledger --rows 3000 --members 1000 --date "$today"
o=$(bin/enqueue settlement --date "$today" 2>&1) || {
  echo "$o" >>"$log"
  # A second make run settles the same date again, collecting the new rows.
  [[ $o == *--rerun* ]] || fail "enqueue settlement --date $today"
  o=$(bin/enqueue settlement --date "$today" --rerun 2>&1) || { echo "$o" >>"$log"; fail "enqueue settlement --rerun"; }
}
echo "$o" >>"$log"
job=$(sed -n 's/.*enqueued as job \([0-9]*\).*/\1/p' <<<"$o")
run=$(sed -n 's/.*: run \([0-9]*\) .*/\1/p' <<<"$o")
wait_jobs
read -r rd wr sk nr ch ms < <(sql "SELECT read_count, write_count, skip_count, not_ready_count, commit_count,
  round(extract(epoch FROM end_time - start_time) * 1000) FROM batch_job_execution WHERE job_execution_id = $job")
read -r items earned used expired < <(sql "SELECT item_count, earned, used, expired FROM point_daily_settlement WHERE run_date = '$today'")
due=$(sql "SELECT count(*) FROM point_ledger WHERE process_on <= '$today' AND ready
  AND (processed_on IS NULL OR processed_on < process_on)")
echo "   settlement $today run $run (job $job): $rd read, $wr written, $sk skipped, $nr not ready, in $ch chunk(s), $ms ms"
echo "   point_daily_settlement $today: $items items (earned $earned, used $used, expired $expired); $due due row(s) left"

echo "== 3. orders file against the simulated partner"
csv=.local/orders.csv
prefix="demo-$run_id-"
ym=$(TZ=$BATCH_TZ date +%Y-%m)
{ echo "username,total_price,applied_year_month"
  for i in $(seq 200); do echo "$prefix$i,$((1000 + i * 10)),$ym"; done; } >"$csv"
t0=$(now_ms)
q bin/enqueue orders --file "$csv"
wait_jobs
ms=$(($(now_ms) - t0))
read -r applied other < <(sql "SELECT count(*) FILTER (WHERE status = 'APPLIED'), count(*) FILTER (WHERE status <> 'APPLIED')
  FROM order_request WHERE username LIKE '$prefix%'")
read -r orders distinct < <(sql "SELECT count(*), count(DISTINCT username) FROM thirdparty.orders WHERE username LIKE '$prefix%'")
echo "   orders $csv: 200 requests, each with its order_submit job, sent in $ms ms"
echo "   $applied APPLIED, $other not; the partner holds $orders orders for $distinct users (one each)"

echo "== 4. coupon rush and its reconciliation"
code="RUSH-$run_id"
q bin/enqueue coupon create --code "$code" --name "Demo rush" --amount-type FIX --amount 1000 --total 50
# 200 members, each signed in with a token as the identity provider would
# issue it (here: signed with the local MEMBER_JWT_SECRET).
bin/enqueue member-token --member "$(seq -s, 200)" --ttl 10m 2>>"$log" | cut -d' ' -f2 >.local/rush.tokens ||
  fail "enqueue member-token"
t0=$(now_ms)
xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Authorization: Bearer {}' \
  "http://$HTTP_ADDR/v1/coupons/$code/issue" <.local/rush.tokens >.local/rush.codes
ms=$(($(now_ms) - t0))
wait_jobs
read -r won soldout odd < <(awk '$1 == 202 {a++} $1 == 410 {s++} $1 != 202 && $1 != 410 {o++} END {print a+0, s+0, o+0}' .local/rush.codes)
rep=$(out bin/enqueue reconcile --check coupon)
read -r db redis stock rolled added qty_was qty_now total < <(jq -r --arg c "$code" '.coupons[] | select(.code == $c) |
  "\(.db_members) \(.redis_members) \(.stock_after) \(.rolled_back) \(.added_back) \(.issued_quantity_before) \(.issued_quantity_after) \(.total_quantity)"' <<<"$rep")
echo "   rush $code: 200 members signed in, 16 at a time, for 50 seats in $ms ms: $won accepted (202), $soldout sold out (410), $odd other"
echo "   reconciliation: $db issued in Postgres of $total seats (oversell $((db > total ? db - total : 0))), $redis in Redis, stock $stock;" \
  "$rolled rolled back, $added added back; issued_quantity $qty_was -> $qty_now"

echo "== 5. exchange of the expired rush coupon"
o=$(out bin/enqueue coupon expire --code "$code")
id=$(sed -n 's/.*(id \([0-9]*\)).*/\1/p' <<<"$o")
t0=$(now_ms)
o=$(out bin/enqueue coupon-exchange --name "Rush make-good $run_id" --description "for the expired $code" \
  --amount-type FIX --amount 1000 --expired-coupon-id "$id")
job=$(sed -n 's/.*job \([0-9]*\) enqueued.*/\1/p' <<<"$o")
wait_jobs
ms=$(($(now_ms) - t0))
read -r issued chunks notified < <(sql "SELECT metadata->'output'->>'issued', metadata->'output'->>'chunks_this_attempt',
  metadata->'output'->>'notified_this_attempt' FROM river_job WHERE id = $job")
read -r exchanged left < <(sql "SELECT count(*) FILTER (WHERE exchanged_at IS NOT NULL),
  count(*) FILTER (WHERE exchanged_at IS NULL AND used_at IS NULL) FROM coupon_issue WHERE coupon_id = $id")
echo "   exchange (job $job): $code expired; its unused issues exchanged for EXCH-$job in $chunks chunk(s), $ms ms"
echo "   $exchanged of $code's issues exchanged, $left left; EXCH-$job issued to $issued members, $notified notified"

echo "== look around while a worker runs on the same database: make serve"
echo "   http://$HTTP_ADDR/ui/        batch runs by business date"
echo "   http://$HTTP_ADDR/riverui/   River UI: every job, its args, output and log lines"
echo "   http://$HTTP_ADDR/metrics    Prometheus metrics (no credential: sums only, no coupon code)"
echo "   operator admin, password $ADMIN_TOKEN (generated, in .local/admin-token), e.g."
echo "   curl -u admin:$ADMIN_TOKEN 'http://$HTTP_ADDR/riverui/api/jobs?limit=5&state=completed'"
sample=$(bin/enqueue member-token --member 42 --ttl 1h | cut -d' ' -f2)
echo "   member 42, a token valid for an hour (signed with .local/member-jwt-secret), e.g."
echo "   curl -H 'Authorization: Bearer $sample' 'http://$HTTP_ADDR/v1/therapy-statistics?yearMonth=$month'"
