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
if ((${#missing[@]})); then
  echo "install.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[all,dev]" 2>&1 \
  | grep -v -e "^WARNING: Location" -e "Running pip as the 'root' user" || true
# pip's exit status is hidden by the filter above: verify the install instead.
python3 -c "import dragoman" && command -v dragoman >/dev/null
bash scripts/install_voices.sh  # Kokoro TTS voices (npm kokoro-js) into the model store
