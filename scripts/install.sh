#!/usr/bin/env bash
# Install everything Dragoman needs on a fresh Debian machine with Python 3.11 (run as root).
# Idempotent: packages already present are skipped, so re-running is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t apt_packages < <(grep -v '^\s*#' scripts/apt-packages.txt | grep -v '^\s*$')
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# npm (scripts/install_voices.sh fetches the Kokoro voices from the npm package kokoro-js):
# a machine may already carry Node.js with its own npm (NodeSource's nodejs package), which
# conflicts with Debian's npm package, so Debian's is installed only when no npm is found.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "install.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip_install() {
  local log
  log=$(mktemp)
  if ! python3 -m pip install -q --disable-pip-version-check "$@" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  grep -v -e "^WARNING: Location" -e "Running pip as the 'root' user" "$log" || true
  rm -f "$log"
}

pip_install -e ".[all,dev]"
# SimulEval (latency cross-check in bench/e2e.py): its declared dependencies break
# pytest, so it goes in without them; the ones it needs are in the `bench` extra.
pip_install --no-deps simuleval==1.1.4
python3 -c "import dragoman" && command -v dragoman >/dev/null
bash scripts/install_voices.sh  # Kokoro TTS voices (npm kokoro-js) into the model store
bash scripts/install_js.sh  # playwright-core (pinned) for the browser tests, drives /usr/bin/chromium
