#!/usr/bin/env bash
# Install the 54 Kokoro-82M voice embeddings (float32 510x256 each) from the npm package
# kokoro-js 1.2.1 (Apache-2.0) into the model store: $DRAGOMAN_HOME/models/kokoro-voices
# (default ~/.cache/dragoman/models/kokoro-voices). Idempotent; never commits anything.
set -euo pipefail
home="${DRAGOMAN_HOME:-$HOME/.cache/dragoman}"
target="$home/models/kokoro-voices"
if [ -f "$target/af_heart.bin" ] && [ "$(ls "$target"/*.bin | wc -l)" -ge 54 ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install_voices.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent kokoro-js@1.2.1 >/dev/null)
tar -xzf "$work"/kokoro-js-1.2.1.tgz -C "$work" package/voices
mkdir -p "$target"
cp "$work"/package/voices/*.bin "$target"/
echo "install_voices.sh: $(ls "$target"/*.bin | wc -l) Kokoro voices in $target"
