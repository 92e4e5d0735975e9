#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exit code 5 means "no tests collected" (e.g. a -k filter that matches nothing): not a failure.
[ "$rc" -eq 5 ] && exit 0
exit "$rc"
