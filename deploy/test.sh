#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs the Swift unit tests, then the
# end-to-end tests (real binary, spawn-fcgi/multiwatch workers, nginx, HTTP; once on one host, once
# on PostgreSQL + Redis) and the fuzz stage
# (each libFuzzer target of Tests/fuzz for FUZZ_SECONDS, 15 by default; 0 skips it) with pytest,
# whose summary line ends the run. Extra arguments go to pytest (e.g. deploy/test.sh -k rate).
# The PostgreSQL tests run against throwaway servers (Tests/e2e/pg_server.py), never a real one.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
echo "== building"
swift build --build-tests 2>&1 | tail -n 1
echo "== unit tests (swift test), RyzePostgresTests against a throwaway PostgreSQL"
pgdir="$(mktemp -d /tmp/ryze-pg-unit-XXXXXX)"
trap 'python3 Tests/e2e/pg_server.py stop "$pgdir" >/dev/null 2>&1 || true' EXIT
RYZE_TEST_POSTGRES_URL="$(python3 Tests/e2e/pg_server.py start "$pgdir")"
export RYZE_TEST_POSTGRES_URL
swift test --skip-build
python3 Tests/e2e/pg_server.py stop "$pgdir"
trap - EXIT
unset RYZE_TEST_POSTGRES_URL
RYZE_BIN="$(swift build --show-bin-path)/ryze-events"
export RYZE_BIN
# The end-to-end suite runs twice in the one pytest run: on one host (the data directory), then
# every test again on PostgreSQL + Redis (SPEC §7; one throwaway server of each for the pass,
# Tests/e2e/shared_backend.py), less those marked one_host. The fuzz stage runs once, last.
export RYZE_E2E_BACKEND=${RYZE_E2E_BACKEND:-local,pg-redis}
echo "== end-to-end tests (pytest, nginx + spawn-fcgi; backends $RYZE_E2E_BACKEND), then the fuzz stage (libFuzzer)"
exec python3 -m pytest Tests/e2e Tests/fuzz -q -p no:cacheprovider "$@"
