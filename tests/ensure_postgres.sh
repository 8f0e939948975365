#!/usr/bin/env bash
# Make sure PostgreSQL's server programs are installed, for the class board's tests (each run starts its own
# throwaway server in a temporary folder; nothing is configured system-wide, no service is started).
set -euo pipefail
if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing PostgreSQL for the class board's tests (apt-get)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # Debian's package starts a cluster of its own; the tests never use it.
  command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | while read -r version name _; do
    pg_ctlcluster "$version" "$name" stop || true
  done
else
  echo "PostgreSQL is missing and this user cannot install it: install the 'postgresql' package." \
       "The class board's PostgreSQL tests will fail without it." >&2
fi
