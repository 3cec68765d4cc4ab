#!/usr/bin/env bash
# admin-token.sh — prints the ADMIN_TOKEN for `make run` and `make serve`:
# $ADMIN_TOKEN if set, else a random token generated once on this machine and
# kept in .local/admin-token (git-ignored), so the two agree and no checkout
# shares a known password.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${ADMIN_TOKEN:-}" ]; then
  printf '%s\n' "$ADMIN_TOKEN"
  exit 0
fi
f=.local/admin-token
if [ ! -s "$f" ]; then
  mkdir -p .local
  (umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f.tmp" && mv "$f.tmp" "$f")
fi
cat "$f"
echo
