#!/usr/bin/env bash
# Lint, type-check and run the whole test suite (what CI runs after scripts/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export DRAGOMAN_OFFLINE=1 HF_HUB_OFFLINE=1 PYTHONASYNCIODEBUG=1
python3 -m ruff check dragoman tests bench
python3 -m mypy
status=0
python3 -m pytest -q -ra "$@" || status=$?
# pytest exits 5 when no test was collected: that is a failure of the suite, say so.
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
