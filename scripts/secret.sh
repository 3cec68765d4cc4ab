#!/usr/bin/env bash
# secret.sh VAR — prints the value of VAR (ADMIN_TOKEN, MEMBER_JWT_SECRET)
# for `make run` and `make serve`: $VAR if set, else a random 32-byte hex
# secret generated once on this machine and kept in .local/<var> (git-ignored,
# readable by its owner only), so the two agree and no checkout shares a
# known secret.
set -euo pipefail
cd "$(dirname "$0")/.."
var=${1:?usage: secret.sh ADMIN_TOKEN|MEMBER_JWT_SECRET}
case $var in
ADMIN_TOKEN | MEMBER_JWT_SECRET) ;;
*) echo "secret.sh: unknown variable $var" >&2; exit 2 ;;
esac
if [ -n "${!var:-}" ]; then
  printf '%s\n' "${!var}"
  exit 0
fi
f=.local/$(tr 'A-Z_' 'a-z-' <<<"$var")
if [ ! -s "$f" ]; then
  mkdir -p .local
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f.tmp" && mv "$f.tmp" "$f")
fi
cat "$f"
echo
