#!/usr/bin/env bash
# Make sure a Chromium the browser tests can drive is installed (Playwright's own download is not used).
set -euo pipefail
for candidate in "${PLAYGROUND_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    exit 0
  fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Chromium for the browser tests (apt-get)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "Chromium is missing and this user cannot install it: install the 'chromium' package," \
       "or set PLAYGROUND_CHROMIUM to a Chromium binary. The browser tests will fail without it." >&2
fi
