#!/usr/bin/env bash
# The benchmark, one command: bench/run.sh
#
# Builds release, then measures in one run, side by side:
#   - GET /api/events/getWebsocket/:instance through nginx (auth, rate limit, store, JSON) against
#     nginx's own `return 200` (the ceiling) and a minimal C libfcgi program (the floor), with
#     fastcgi_keep_conn off and on, the same processes x threads for the C program and ryze-events,
#     wrk alternating between them for ROUNDS rounds;
#   - the CPU per request (workers' and nginx's user and kernel time, the workers' reads and
#     writes) of the floor and ryze-events with keep_conn on, CPU_ROUNDS rounds alternating;
#   - durable POST writes/s with 16 clients, next to this disk's raw fdatasync rate;
#   - instructions per GET inside the worker (callgrind, excluding libfcgi and the kernel), and
#     user-space instructions per request of a whole live worker next to the C floor's (callgrind,
#     one thread each, through the same nginx);
#   - the limiter's and the request path's in-process cost; replay of a 1,000,000-record log.
# Settings: PROCS (2), THREADS (4), ROUNDS (5), DURATION (4 s per wrk run), CONNECTIONS (32),
# KEEPALIVE (4), CPU_ROUNDS (3). Results: printed, and kept in bench/out/latest.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROCS=${PROCS:-2}
THREADS=${THREADS:-4}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4}
CONNECTIONS=${CONNECTIONS:-32}
KEEPALIVE=${KEEPALIVE:-4}

deploy/install-deps.sh
echo "building release..."
swift build -c release 2>&1 | tail -n 1
BIN_DIR=$(swift build -c release --show-bin-path)
BIN=$BIN_DIR/ryze-events
BENCH=$BIN_DIR/ryze-bench

DIR=$(mktemp -d /tmp/ryze-bench.XXXXXX)
chmod 0755 "$DIR"
mkdir -p bench/out
OUT=bench/out/latest.txt
cleanup() {
    [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
    pkill -f "^$DIR/fcgi-hello" 2>/dev/null || true
    pkill -f "^$BIN serve --data-dir $DIR/data" 2>/dev/null || true
    pkill -f "callgrind-out-file=$DIR/cg-live" 2>/dev/null || true
    sleep 0.5
    rm -rf "$DIR"
}
trap cleanup EXIT

cc -O2 -o "$DIR/fcgi-hello" bench/fcgi-hello.c $(pkg-config --cflags --libs fcgi) -lpthread
spawn-fcgi -s "$DIR/floor.sock" -M 0666 -F "$PROCS" -- "$DIR/fcgi-hello" "$THREADS" >/dev/null
spawn-fcgi -s "$DIR/ryze.sock" -M 0666 -F "$PROCS" -- "$BIN" serve --data-dir "$DIR/data" --threads "$THREADS" \
    --log-level warning --rate-limit 6000000 --log-file "$DIR/worker.log" >/dev/null

PORT_CLOSE=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT_KEEP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT_CALLGRIND=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|@DIR@|$DIR|g" -e "s|@ROOT@|$ROOT|g" -e "s|@PORT_CLOSE@|$PORT_CLOSE|g" -e "s|@PORT_KEEP@|$PORT_KEEP|g" -e "s|@KEEPALIVE@|$KEEPALIVE|g" \
    -e "s|@PORT_CALLGRIND@|$PORT_CALLGRIND|g" \
    bench/nginx.conf.template >"$DIR/nginx.conf"
nginx -c "$DIR/nginx.conf" -p "$DIR"
sleep 0.5

TOKEN=$("$BIN" account create --data-dir "$DIR/data" --name bench --instance-quota 0)
export RYZE_TOKEN=$TOKEN
curl -sf -X POST "http://127.0.0.1:$PORT_CLOSE/api/instance/new" -H "token: $TOKEN" \
    -d '{"name":"bench","websocketEnabled":true,"websocketEvents":["message.exchange","call.update"]}' >/dev/null
curl -sf "http://127.0.0.1:$PORT_CLOSE/api/events/getWebsocket/bench" -H "token: $TOKEN" >/dev/null

# wrk URL [wrk args...] -> "req/s p99_ms"
measure() {
    local url=$1; shift
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" | awk '
        /Requests\/sec/ { rps = $2 }
        / 99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                 ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v; p99 = ms }
        /Non-2xx/ { bad = $NF }
        END { if (bad > 0) { print "non-2xx responses: " bad > "/dev/stderr"; exit 1 } printf "%.0f %.2f\n", rps, p99 }'
}

declare -A RPS P99
targets=("ceiling close /ceiling" "floor close /floor" "ryze close /api/events/getWebsocket/bench"
         "ceiling keep /ceiling" "floor keep /floor" "ryze keep /api/events/getWebsocket/bench")
echo "GET: $ROUNDS rounds x ${DURATION}s, $CONNECTIONS connections, ${PROCS} processes x ${THREADS} threads, nginx keepalive $KEEPALIVE"
for round in $(seq "$ROUNDS"); do
    order=("${targets[@]}")
    # Every other round backwards, so that a machine slowing down or speeding up during the run
    # does not favour whoever comes first.
    if (( round % 2 == 0 )); then order=(); for ((k = ${#targets[@]} - 1; k >= 0; k--)); do order+=("${targets[k]}"); done; fi
    for t in "${order[@]}"; do
        set -- $t
        port=$PORT_CLOSE; [ "$2" = keep ] && port=$PORT_KEEP
        read -r rps p99 < <(measure "http://127.0.0.1:$port$3" -H "token: $TOKEN")
        RPS[$1-$2]+="$rps "
        P99[$1-$2]+="$p99 "
        printf '  round %d %-8s keep_conn %-5s %8s req/s  p99 %6s ms\n' "$round" "$1" "$2" "$rps" "$p99"
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# CPU per request, keep_conn on: where ryze-events' requests cost more than the floor's. Each
# side's workers' and nginx's user and kernel time (/proc/PID/stat) and the workers' read and write
# calls (/proc/PID/io) over a wrk run, divided by the requests it completed; CPU_ROUNDS rounds,
# alternating, medians and ranges.
CPU_ROUNDS=${CPU_ROUNDS:-3}
echo "CPU per request, keep_conn on: $CPU_ROUNDS rounds x ${DURATION}s each..."
HZ=$(getconf CLK_TCK)
# sample PGREP_ARGS... -> "user_ticks system_ticks read_calls write_calls" summed over the processes
sample() {
    local u=0 s=0 r=0 w=0 p
    for p in $(pgrep "$@"); do
        read -r uu ss < <(awk '{ print $14, $15 }' "/proc/$p/stat")
        u=$((u + uu)); s=$((s + ss))
        r=$((r + $(awk '/^syscr/ { print $2 }' "/proc/$p/io"))); w=$((w + $(awk '/^syscw/ { print $2 }' "/proc/$p/io")))
    done
    echo "$u $s $r $w"
}
declare -A CPU
for round in $(seq "$CPU_ROUNDS"); do
    for who in floor ryze; do
        if [ "$who" = floor ]; then pattern="^$DIR/fcgi-hello"; path=/floor; else pattern="^$BIN serve --data-dir $DIR/data"; path=/api/events/getWebsocket/bench; fi
        read -r u0 s0 r0 w0 < <(sample -f "$pattern"); read -r nu0 ns0 _ _ < <(sample -P "$(cat "$DIR/nginx.pid")")
        n=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H "token: $TOKEN" "http://127.0.0.1:$PORT_KEEP$path" | awk '/requests in/ { print $1 }')
        read -r u1 s1 r1 w1 < <(sample -f "$pattern"); read -r nu1 ns1 _ _ < <(sample -P "$(cat "$DIR/nginx.pid")")
        for m in "wu $((u1 - u0))" "ws $((s1 - s0))" "nu $((nu1 - nu0))" "ns $((ns1 - ns0))"; do
            set -- $m; CPU[$who-$1]+="$(awk -v t="$2" -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }') "
        done
        CPU[$who-rd]+="$(awk -v c=$((r1 - r0)) -v n="$n" 'BEGIN { printf "%.2f", c / n }') "
        CPU[$who-wr]+="$(awk -v c=$((w1 - w0)) -v n="$n" 'BEGIN { printf "%.2f", c / n }') "
    done
done
# median (min-max) of a list
spread() { local v; v=$(cat); printf '%s (%s)' "$(echo "$v" | median)" "$(echo "$v" | tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 {lo=$1} {hi=$1} END {print lo "-" hi}')"; }

echo "write path: POST /api/events/websocket/bench, 16 clients..."
read -r wps wp99 < <(CONNECTIONS=16 measure "http://127.0.0.1:$PORT_CLOSE/api/events/websocket/bench" -s bench/post.lua)
FSYNC=$(python3 - "$DIR/data" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
n, start = 0, time.time()
while time.time() - start < 3:
    os.write(fd, b"x" * 120); os.fdatasync(fd); n += 1
os.close(fd); os.unlink(path)
print(round(n / (time.time() - start)))
PY
)

echo "callgrind: instructions per GET inside the worker..."
# valgrind 3.19 cannot read the toolchain's DWARF 5: profile a copy without debug sections
# (function names stay, from the symbol table).
objcopy --strip-debug "$BENCH" "$DIR/ryze-bench-nodebug"
# cg_total FILE -> the instructions a callgrind profile counted in all.
cg_total() {
    # awk reads to the end: an early exit would SIGPIPE callgrind_annotate and fail the pipeline.
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen { gsub(",", "", $1); print $1; seen = 1 }'
}
instr() {
    valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.$1" "$DIR/ryze-bench-nodebug" request-loop "$1" >/dev/null 2>&1
    cg_total "$DIR/cg.$1"
}
I1=$(instr 2000)
I2=$(instr 12000)
PER_GET=$(( (I2 - I1) / 10000 ))
callgrind_annotate --inclusive=yes "$DIR/cg.12000" 2>/dev/null | sed -n '20,70p' | cut -c1-200 >bench/out/callgrind-get.txt || true

echo "callgrind: a whole live worker and the C floor, one thread each, through nginx..."
# Both behind the same nginx as above, driven by one wrk connection; the counters are zeroed after
# a warm-up and dumped after a measured run, and divided by the requests wrk saw completed.
objcopy --strip-debug "$BIN" "$DIR/ryze-events-nodebug"
spawn-fcgi -s "$DIR/cg-floor.sock" -M 0666 -F 1 -- "$(command -v valgrind)" --tool=callgrind \
    --callgrind-out-file="$DIR/cg-live-floor" "$DIR/fcgi-hello" 1 >/dev/null
spawn-fcgi -s "$DIR/cg-ryze.sock" -M 0666 -F 1 -- "$(command -v valgrind)" --tool=callgrind \
    --callgrind-out-file="$DIR/cg-live-ryze" "$DIR/ryze-events-nodebug" serve --data-dir "$DIR/data" --threads 1 \
    --log-level warning --rate-limit 6000000 --log-file "$DIR/worker-callgrind.log" >/dev/null
live() {   # live NAME PATH -> "instructions-per-request requests"
    local pid n total
    pid=$(pgrep -f "callgrind-out-file=$DIR/cg-live-$1") || return 1
    wrk -t1 -c1 -d2s -H "token: $TOKEN" "http://127.0.0.1:$PORT_CALLGRIND$2" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    n=$(wrk -t1 -c1 -d4s -H "token: $TOKEN" "http://127.0.0.1:$PORT_CALLGRIND$2" | awk '/requests in/ { print $1 }')
    callgrind_control -d "$pid" >/dev/null
    total=$(cg_total "$DIR/cg-live-$1.1")
    echo "$(( total / n )) $n"
}
sleep 2   # valgrind starting up
read -r LIVE_FLOOR _ < <(live floor /floor)
read -r LIVE_RYZE LIVE_N < <(live ryze /api/events/getWebsocket/bench)
LIVE_LIBFCGI=$(callgrind_annotate --inclusive=yes "$DIR/cg-live-ryze.1" 2>/dev/null | awk -v n="$LIVE_N" '
    /\?\?\?:FCGX_(Accept|Finish)_r / { gsub(",", "", $1); sum += $1 } END { printf "%d", sum / n }')
callgrind_annotate --inclusive=yes "$DIR/cg-live-ryze.1" 2>/dev/null | sed -n '20,80p' | cut -c1-200 >bench/out/callgrind-live-worker.txt || true

LIMITER=$("$BENCH" limiter)
# The request path with --store postgresql too, against a throwaway server (its process's copy
# of the state answers; PostgreSQL only keeps it current).
PGDIR=$(mktemp -d /tmp/ryze-pg-bench.XXXXXX)
PGURL=$(python3 Tests/e2e/pg_server.py start "$PGDIR")
REQUEST=$(RYZE_BENCH_POSTGRES_URL="$PGURL/postgres" "$BENCH" request)
python3 Tests/e2e/pg_server.py stop "$PGDIR" >/dev/null
LOGDIR=$("$BENCH" make-log 100000 10)
REPLAY=$("$BENCH" replay "$LOGDIR")
rm -rf "$LOGDIR"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# Ratio of medians, then each round's own ratio: how far one run's figure can be trusted.
ratios() { printf '%s  (rounds:' "$(ratio "$(echo "${RPS[$1]}" | median)" "$(echo "${RPS[$2]}" | median)")"
           paste -d' ' <(echo "${RPS[$1]}" | tr ' ' '\n' | grep .) <(echo "${RPS[$2]}" | tr ' ' '\n' | grep .) |
               while read -r a b; do printf ' %s' "$(ratio "$a" "$b")"; done; echo ')'; }
{
    echo "ryze-events benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m); wrk and every server on this machine"
    echo
    printf '%-28s %12s %12s\n' "GET (median of $ROUNDS)" "req/s" "p99 ms"
    for k in ceiling-keep floor-close ryze-close floor-keep ryze-keep; do
        printf '%-28s %12s %12s\n' "$k" "$(echo "${RPS[$k]}" | median)" "$(echo "${P99[$k]}" | median)"
    done
    echo
    echo "ryze / C libfcgi floor, keep_conn off:  $(ratios ryze-close floor-close)"
    echo "ryze / C libfcgi floor, keep_conn on:   $(ratios ryze-keep floor-keep)"
    echo "ryze / nginx return 200, keep_conn on:  $(ratios ryze-keep ceiling-keep)"
    echo
    echo "CPU per request, keep_conn on (us; median (range) of $CPU_ROUNDS rounds):"
    for who in floor ryze; do
        printf '  %-6s worker user %-18s kernel %-18s nginx user %-18s kernel %-18s reads %-18s writes %s\n' "$who" \
            "$(echo "${CPU[$who-wu]}" | spread)" "$(echo "${CPU[$who-ws]}" | spread)" "$(echo "${CPU[$who-nu]}" | spread)" \
            "$(echo "${CPU[$who-ns]}" | spread)" "$(echo "${CPU[$who-rd]}" | spread)" "$(echo "${CPU[$who-wr]}" | spread)"
    done
    echo
    echo "durable POST writes/s (16 clients):     $wps (p99 $wp99 ms)"
    echo "raw fdatasync/s on the data disk:       $FSYNC   ratio $(ratio "$wps" "$FSYNC")"
    echo
    echo "instructions per GET in the worker:     $PER_GET (callgrind; routing, auth, rate limit, store, JSON; no libfcgi, no kernel)"
    echo "user instructions per request, whole live worker (callgrind, 1 thread, through nginx):"
    echo "  ryze-events GET $LIVE_RYZE (libfcgi's share $LIVE_LIBFCGI), C libfcgi floor $LIVE_FLOOR   ratio $(ratio "$LIVE_RYZE" "$LIVE_FLOOR")"
    echo "$LIMITER"
    echo "$REQUEST"
    echo "$REPLAY"
} | tee "$OUT"
echo "(kept in $OUT; callgrind breakdowns in bench/out/callgrind-get.txt and bench/out/callgrind-live-worker.txt)"
