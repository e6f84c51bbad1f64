#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs the Swift unit tests, then the
# end-to-end tests (real binary, spawn-fcgi/multiwatch workers, nginx, HTTP) with pytest.
# Extra arguments go to pytest (e.g. deploy/test.sh -k rate).
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
echo "== building"
swift build --build-tests 2>&1 | tail -n 1
echo "== unit tests (swift test)"
swift test --skip-build
RYZE_BIN="$(swift build --show-bin-path)/ryze-events"
export RYZE_BIN
echo "== end-to-end tests (pytest, nginx + spawn-fcgi)"
exec python3 -m pytest Tests/e2e -q -p no:cacheprovider "$@"
