#!/usr/bin/env bash
# demo-db.sh — prints the DATABASE_URL that `make run` and `make serve` use:
# DATABASE_URL when the caller set it, else a database named tidemark on the
# server scripts/services.sh found (created if missing). Run after
# `eval "$(scripts/services.sh)"`, with the caller's own DATABASE_URL, if any,
# in USER_DATABASE_URL.
set -euo pipefail
if [ -n "${USER_DATABASE_URL:-}" ]; then
  echo "$USER_DATABASE_URL"
  exit 0
fi
psql "$DATABASE_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'tidemark'" | grep -q 1 ||
  psql "$DATABASE_URL" -qc "CREATE DATABASE tidemark"
query=""; [[ $DATABASE_URL == *\?* ]] && query="?${DATABASE_URL#*\?}"
base=${DATABASE_URL%%\?*}
echo "${base%/*}/tidemark$query"
