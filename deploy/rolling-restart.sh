#!/usr/bin/env bash
# Restarts the workers of a multiwatch supervisor one at a time, without a failed request:
# each worker is asked to stop (SIGUSR2: stop accepting, finish what it holds, exit 0), the
# others keep accepting from the shared socket meanwhile, and multiwatch starts a replacement
# (running the binary now on disk, with the flags in its command line).
#
#   rolling-restart.sh MULTIWATCH_PID [SECONDS_BETWEEN_WORKERS]
set -euo pipefail
supervisor=${1:?usage: rolling-restart.sh MULTIWATCH_PID [SECONDS]}
pause=${2:-1}

children() { pgrep -P "$supervisor" | sort -n; }

before=$(children)
count=$(echo "$before" | grep -c . || true)
[ "$count" -gt 0 ] || { echo "rolling-restart: no workers under pid $supervisor" >&2; exit 1; }

for pid in $before; do
    kill -USR2 "$pid" 2>/dev/null || continue
    # Wait for it to finish its requests and exit, then for its replacement.
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    for _ in $(seq 100); do [ "$(children | grep -c .)" -ge "$count" ] && break; sleep 0.1; done
    sleep "$pause"
done
echo "rolling-restart: replaced $count workers"
