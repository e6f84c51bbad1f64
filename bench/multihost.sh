#!/usr/bin/env bash
# GET through nginx on one host and in the several-hosts mode (SPEC §7), side by side in one run:
#   bench/multihost.sh
#
# Four worker sets of PROCS x THREADS behind one nginx (fastcgi_keep_conn on), each on its own
# port, all answering GET /api/events/getWebsocket/:instance with a real token:
#   local     the data directory: the log and the rate table (one host)
#   pg        --store postgresql:// (the state in PostgreSQL), the rate table local
#   redis     --rate-limit-store redis:// (the buckets in Redis), the log local
#   pg-redis  both: what each host of a several-hosts deployment runs
# against a throwaway PostgreSQL and Redis on this machine (Tests/e2e/pg_server.py, redis-server
# with a pid file; both stopped by pid at the end). wrk alternates between them for ROUNDS rounds
# (every other round backwards); the ratios to `local` are per round, reported as median and
# range. Then where the time goes in pg-redis: system calls per request of one worker (strace -c)
# in each mode, and CPU seconds per 1,000 requests of the workers, Redis and PostgreSQL.
# Settings: PROCS (2), THREADS (4), ROUNDS (5), DURATION (4 s), CONNECTIONS (32), KEEPALIVE (4).
# Results: printed, and kept in bench/out/multihost.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROCS=${PROCS:-2}
THREADS=${THREADS:-4}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4}
CONNECTIONS=${CONNECTIONS:-32}
KEEPALIVE=${KEEPALIVE:-4}
MODES=(local pg redis pg-redis)

deploy/install-deps.sh
echo "building release..."
swift build -c release --product ryze-events 2>&1 | tail -n 1
BIN=$(swift build -c release --show-bin-path)/ryze-events

DIR=$(mktemp -d /tmp/ryze-multihost.XXXXXX)
chmod 0755 "$DIR"
mkdir -p bench/out
OUT=bench/out/multihost.txt
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cleanup() {
    [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
    for m in "${MODES[@]}"; do
        for p in $(pgrep -f "^$BIN serve --data-dir $DIR/$m " || true); do kill "$p" 2>/dev/null || true; done
    done
    [ -f "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
    python3 Tests/e2e/pg_server.py stop "$DIR/pg" >/dev/null 2>&1 || true
    sleep 0.5
    rm -rf "$DIR"
}
trap cleanup EXIT

PGURL=$(python3 Tests/e2e/pg_server.py start "$DIR/pg")/postgres
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$DIR/redis.pid" --dir "$DIR" --logfile "$DIR/redis.log" >/dev/null
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
REDIS=redis://127.0.0.1:$REDIS_PORT

# The pg and pg-redis workers share one database (one deployment), redis and pg-redis one Redis.
mkdir -m 0700 "$DIR/key"
head -c 32 /dev/urandom >"$DIR/key/secret.key"
chmod 0600 "$DIR/key/secret.key"
store_args() {
    case $1 in
        pg|pg-redis) echo "--store $PGURL --secret-key-file $DIR/key/secret.key" ;;
        *) echo "--secret-key-file $DIR/key/secret.key" ;;
    esac
}
declare -A PORT TOKEN
conf="worker_processes 1;
error_log $DIR/nginx-error.log warn;
pid $DIR/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $DIR/body; fastcgi_temp_path $DIR/fastcgi; proxy_temp_path $DIR/proxy;
    uwsgi_temp_path $DIR/uwsgi; scgi_temp_path $DIR/scgi;"
for m in "${MODES[@]}"; do
    PORT[$m]=$(free_port)
    extra=()
    case $m in redis|pg-redis) extra=(--rate-limit-store "$REDIS") ;; esac
    # shellcheck disable=SC2046
    spawn-fcgi -s "$DIR/$m.sock" -M 0666 -F "$PROCS" -- "$BIN" serve --data-dir "$DIR/$m" $(store_args "$m") \
        --threads "$THREADS" --log-level warning --rate-limit 6000000 --log-file "$DIR/$m.log" ${extra[@]+"${extra[@]}"} >/dev/null
    conf+="
    upstream ryze_$m { server unix:$DIR/$m.sock; keepalive $KEEPALIVE; keepalive_timeout 20s; }
    server {
        listen 127.0.0.1:${PORT[$m]};
        location /api/ { include $ROOT/deploy/fastcgi_params.ryze-events; fastcgi_pass ryze_$m; fastcgi_keep_conn on; }
    }"
done
echo "$conf
}" >"$DIR/nginx.conf"
nginx -c "$DIR/nginx.conf" -p "$DIR"
sleep 0.5

for m in local redis pg; do
    # shellcheck disable=SC2046
    TOKEN[$m]=$("$BIN" account create --data-dir "$DIR/$m" $(store_args "$m") --name "bench-$m" --instance-quota 0)
    curl -sf -X POST "http://127.0.0.1:${PORT[$m]}/api/instance/new" -H "token: ${TOKEN[$m]}" \
        -d '{"name":"bench","websocketEnabled":true,"websocketEvents":["message.exchange","call.update"]}' >/dev/null
done
TOKEN[pg-redis]=${TOKEN[pg]}
for m in "${MODES[@]}"; do
    curl -sf "http://127.0.0.1:${PORT[$m]}/api/events/getWebsocket/bench" -H "token: ${TOKEN[$m]}" >/dev/null
done

# wrk URL [wrk args...] -> "req/s p99_ms requests"
measure() {
    local url=$1; shift
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" | awk '
        /Requests\/sec/ { rps = $2 }
        / 99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                 ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v; p99 = ms }
        /Non-2xx/ { bad = $NF }
        / requests in / { total = $1 }
        END { if (bad > 0) { print "non-2xx responses: " bad > "/dev/stderr"; exit 1 } printf "%.0f %.2f %d\n", rps, p99, total }'
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { tr ' ' '\n' | grep . | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%s-%s", lo, hi}'; }

declare -A RPS P99 RATIO
echo "GET: $ROUNDS rounds x ${DURATION}s, $CONNECTIONS connections, $PROCS processes x $THREADS threads, keep_conn on (keepalive $KEEPALIVE)"
for round in $(seq "$ROUNDS"); do
    order=("${MODES[@]}")
    if (( round % 2 == 0 )); then order=(); for ((k = ${#MODES[@]} - 1; k >= 0; k--)); do order+=("${MODES[k]}"); done; fi
    declare -A this=()
    for m in "${order[@]}"; do
        read -r rps p99 _ < <(measure "http://127.0.0.1:${PORT[$m]}/api/events/getWebsocket/bench" -H "token: ${TOKEN[$m]}")
        this[$m]=$rps
        RPS[$m]+="$rps "
        P99[$m]+="$p99 "
        printf '  round %d %-9s %8s req/s  p99 %6s ms\n' "$round" "$m" "$rps" "$p99"
    done
    for m in "${MODES[@]}"; do
        RATIO[$m]+="$(awk -v a="${this[$m]}" -v b="${this[local]}" 'BEGIN { printf "%.2f", a / b }') "
    done
done

# CPU per request: the user+system ticks (/proc/PID/stat) of each group of processes over one
# wrk run. PostgreSQL: the postmaster and its children (the workers' sessions among them).
ticks() { for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0; done | awk '{ s += $1 } END { print s + 0 }'; }
per_request() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t / hz / n * 1e6 }'; }
pg_pids() { local main; main=$(head -n 1 "$DIR/pg/pgdata/postmaster.pid"); echo "$main" $(ps -o pid= --ppid "$main"); }
REDIS_PID=$(cat "$DIR/redis.pid")
declare -A CPU_WORKERS CPU_REDIS CPU_PG SYSCALLS
echo "CPU and system calls per request, one more run of each mode..."
for m in "${MODES[@]}"; do
    workers=$(pgrep -f "^$BIN serve --data-dir $DIR/$m " | tr '\n' ' ')
    pgp=$(pg_pids)
    w0=$(ticks $workers); r0=$(ticks "$REDIS_PID"); p0=$(ticks $pgp)
    read -r _ _ n < <(measure "http://127.0.0.1:${PORT[$m]}/api/events/getWebsocket/bench" -H "token: ${TOKEN[$m]}")
    w1=$(ticks $workers); r1=$(ticks "$REDIS_PID"); p1=$(ticks $pgp)
    CPU_WORKERS[$m]=$(per_request $((w1 - w0)) "$n")
    CPU_REDIS[$m]=$(per_request $((r1 - r0)) "$n")
    CPU_PG[$m]=$(per_request $((p1 - p0)) "$n")
    # System calls per request: every thread of every worker of the mode under strace -c for one
    # wrk run (strace slows them down; the counts are what matters).
    args=(); for p in $workers; do args+=(-p "$p"); done
    strace -c -f -q -o "$DIR/strace-$m.txt" "${args[@]}" &
    tracer=$!
    sleep 1
    read -r _ _ n < <(measure "http://127.0.0.1:${PORT[$m]}/api/events/getWebsocket/bench" -H "token: ${TOKEN[$m]}")
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    SYSCALLS[$m]=$(awk -v n="$n" '$NF == "total" { printf "%.1f", $(NF-2) / n }' "$DIR/strace-$m.txt")
    cp "$DIR/strace-$m.txt" "bench/out/multihost-strace-$m.txt"
done

{
    echo "multihost GET bench, $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "$PROCS processes x $THREADS threads per mode, keep_conn on, $ROUNDS rounds x ${DURATION}s, $CONNECTIONS connections"
    printf '%-9s %10s %10s %16s %10s %12s %12s %10s\n' mode "req/s" "p99 ms" "x local (range)" "workers" "redis" "postgres" "syscalls"
    printf '%-9s %10s %10s %16s %10s %12s %12s %10s\n' "" median median "per round" "CPU us/req" "CPU us/req" "CPU us/req" "per req"
    for m in "${MODES[@]}"; do
        printf '%-9s %10s %10s %16s %10s %12s %12s %10s\n' "$m" "$(echo "${RPS[$m]}" | median)" "$(echo "${P99[$m]}" | median)" \
            "$(echo "${RATIO[$m]}" | median) ($(echo "${RATIO[$m]}" | range))" "${CPU_WORKERS[$m]}" "${CPU_REDIS[$m]}" "${CPU_PG[$m]}" "${SYSCALLS[$m]}"
    done
    echo "rounds, req/s:"
    for m in "${MODES[@]}"; do echo "  $m: ${RPS[$m]}"; done
} | tee "$OUT"
