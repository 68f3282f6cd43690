#!/usr/bin/env bash
# JS dev tooling for the browser client and meeting extension tests: playwright-core
# (pinned in package-lock.json) drives the system Chromium (apt: chromium); no browser
# is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "install_js.sh: npm is missing (apt-get install npm)" >&2; exit 1; }
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
