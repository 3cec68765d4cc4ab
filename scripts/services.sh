#!/usr/bin/env bash
# services.sh — make sure Postgres (and Redis) are reachable, then print the
# environment to use as shell assignments:
#
#   eval "$(scripts/services.sh)"
#
# Postgres, in order: DATABASE_URL if it answers; 127.0.0.1:5432; a throwaway
# cluster in .local/pg (git-ignored) started with the machine's initdb/pg_ctl,
# run as the `postgres` user when we are root; Debian's postgresql package is
# installed only when no server binary exists at all. Redis likewise: REDIS_URL,
# 127.0.0.1:6379, a redis-server of our own on 127.0.0.1:6389, installing
# Debian's redis-server package if needed.
#
# The server binaries (initdb/pg_ctl, redis-server) are installed even when
# servers answer: the fault suite starts private instances it crashes. So is
# Debian's chromium, which the browser tests drive (/usr/bin/chromium),
# promtool (Debian's prometheus), which checks the alert rules, and Debian's
# pgbouncer, which the pooler tests run privately in transaction mode.
#
# Everything but the final assignments goes to stderr. SERVICES_OWN=1 skips
# the machine's shared servers and uses (or starts) our own, to test that path.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
local_dir="$root/.local"
log() { echo "services: $*" >&2; }

pg_answers() { # $1 = URL
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -d "$1" -t 3 >/dev/null 2>&1 && psql "$1" -Atqc 'select 1' >/dev/null 2>&1
  else
    return 1
  fi
}

find_pg_bin() { # prints the directory holding initdb/pg_ctl, or nothing
  local c
  for c in $(command -v initdb 2>/dev/null | xargs -r dirname) /usr/lib/postgresql/*/bin; do
    [ -x "$c/initdb" ] && [ -x "$c/pg_ctl" ] && { echo "$c"; return; }
  done
}

# apt's own output goes to .local/apt.log; stderr gets it only when it fails.
apt_install() {
  local apt_log="$local_dir/apt.log"
  log "installing Debian packages: $* (apt's output: $apt_log)"
  mkdir -p "$local_dir"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq "$@"; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    log "installing $* failed; the whole output is in $apt_log"
    return 1
  fi
}

start_own_pg() {
  local bin port=5439 data="$local_dir/pg/data" sock="$local_dir/pg/sock"
  bin=$(find_pg_bin)
  if [ -z "$bin" ]; then
    apt_install postgresql postgresql-client
    bin=$(find_pg_bin)
  fi
  [ -n "$bin" ] || { log "no initdb/pg_ctl found after installing postgresql"; exit 1; }
  mkdir -p "$data" "$sock"
  local as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$local_dir/pg" postgres
    chown -R postgres "$local_dir/pg"
    # The folders above ours must be traversable by the postgres user.
    as=(runuser -u postgres --)
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising a throwaway cluster in $data"
    "${as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! "${as[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "starting the throwaway cluster on 127.0.0.1:$port"
    "${as[@]}" "$bin/pg_ctl" -D "$data" -l "$local_dir/pg/log" -w \
      -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >&2
  fi
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}

# --- Postgres ---------------------------------------------------------------
default_pg="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
if ! command -v psql >/dev/null 2>&1; then
  apt_install postgresql-client
fi
if [ -n "${DATABASE_URL:-}" ] && pg_answers "$DATABASE_URL"; then
  :
elif [ "${SERVICES_OWN:-}" != 1 ] && pg_answers "$default_pg"; then
  DATABASE_URL=$default_pg
else
  [ -n "${DATABASE_URL:-}" ] && log "DATABASE_URL does not answer; looking elsewhere"
  start_own_pg
  pg_answers "$DATABASE_URL" || { log "Postgres still does not answer at $DATABASE_URL"; exit 1; }
fi

# The fault suite starts private clusters of its own (internal/harness/testpg): it
# needs the server binaries even when a server already answers.
if [ -z "$(find_pg_bin)" ]; then
  apt_install postgresql
fi

# --- Redis ------------------------------------------------------------------
redis_answers() { # $1 = URL
  command -v redis-cli >/dev/null 2>&1 && [ "$(redis-cli -u "$1" ping 2>/dev/null)" = PONG ]
}
default_redis="redis://127.0.0.1:6379/0"
# redis-server is needed even when a Redis answers: the fault suite kills and
# restarts a private one (internal/harness/testredis).
if ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi
if [ -n "${REDIS_URL:-}" ] && redis_answers "$REDIS_URL"; then
  :
elif [ "${SERVICES_OWN:-}" != 1 ] && redis_answers "$default_redis"; then
  REDIS_URL=$default_redis
else
  mkdir -p "$local_dir/redis"
  log "starting redis-server on 127.0.0.1:6389"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6389 --save "" --appendonly no \
    --dir "$local_dir/redis" --logfile "$local_dir/redis/log" >&2
  REDIS_URL="redis://127.0.0.1:6389/0"
  for _ in $(seq 50); do redis_answers "$REDIS_URL" && break; sleep 0.1; done
  redis_answers "$REDIS_URL" || { log "Redis does not answer at $REDIS_URL"; exit 1; }
fi

# --- PgBouncer ---------------------------------------------------------------
# The pooler tests start a private pgbouncer (internal/harness/testpgbouncer) in
# transaction mode in front of Postgres; only the binary is needed here.
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  apt_install pgbouncer
fi

# --- Browser -----------------------------------------------------------------
# The River UI test drives a real browser and fails without one.
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi

# --- promtool -----------------------------------------------------------------
# The alert rules' tests (deploy/kubernetes) run promtool, from Debian's
# prometheus package; the server it also installs is not started.
if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus
fi

printf 'export DATABASE_URL=%q\nexport REDIS_URL=%q\n' "$DATABASE_URL" "$REDIS_URL"
