#!/usr/bin/env bash
# The event-flow benchmark, one command: bench/flow.sh   (not for CI: about 3-5 minutes, loopback only)
#
# Builds release, then starts its own deployment in a temp dir (nginx from
# deploy/nginx-local.conf.template with nchan and the /ws/ gate, 2 spawn-fcgi workers, a receiver
# nginx answering `return 204` on another loopback port, a stuck receiver that accepts and never
# answers, and `ryze-events deliver` when a part needs it) and measures:
#   1. publish-to-frame latency: INSTANCES instances x PER_INSTANCE WebSocket subscribers on the
#      real /ws/ path, RATE events/s for LAT_SECONDS s over PUB_CONNS keep-alive connections
#      (bench/flow-ws.c, one epoll loop, compiled here with gcc);
#   2. durable publish with one enabled webhook (deliverer stopped: the 202 comes after the
#      queue's fdatasync), wrk with 16 connections, next to 16 concurrent raw fdatasync writers;
#   3. deliverer throughput: the deliveries part 2 queued, drained by
#      `deliver --concurrency 32 --per-endpoint 32` into the 204 receiver (its default log level,
#      info: one line per attempt, as deployed);
#   4. a stuck endpoint: the healthy endpoint's delivery rate with and without a second label on a
#      stuck endpoint (`--concurrency 32 --per-endpoint 16 --webhook-timeout 2` in both runs),
#      each from a backlog of FILL_SECONDS of publishing, for at most STUCK_WINDOW s.
# Settings: RATE (2000), LAT_SECONDS (10), INSTANCES (100), PER_INSTANCE (10), PUB_CONNS (16),
# DURATION (6 s of wrk in part 2, in DUR_ROUNDS (3) rounds), FILL_SECONDS (2 s of wrk per fill in part 4),
# STUCK_WINDOW (15 s at most per drain in part 4), STUCK_ROUNDS (1), THREADS (8 per worker, as deploy/ryze-events.service),
# NGINX_WORKERS (2: nginx's worker_processes; nchan forwards messages between them),
# PARTS (the parts to run, "1 2 3 4"; part 3 without part 2 still publishes part 2's backlog, without
# its fdatasync probes: PARTS="3 4" measures the deliverer alone), BIN (a ryze-events binary to run
# instead of building this checkout: two builds side by side), TRACE (1: perf's syscall tracepoints
# on the workers during part 2's first round, summed up by bench/commit-trace.py; needs perf and
# the right to trace).
# Results: printed, and appended to bench/out/flow.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=${RATE:-2000}
LAT_SECONDS=${LAT_SECONDS:-10}
INSTANCES=${INSTANCES:-100}
PER_INSTANCE=${PER_INSTANCE:-10}
PUB_CONNS=${PUB_CONNS:-16}
DURATION=${DURATION:-6}
DUR_ROUNDS=${DUR_ROUNDS:-3}
FILL_SECONDS=${FILL_SECONDS:-2}
STUCK_WINDOW=${STUCK_WINDOW:-15}
STUCK_ROUNDS=${STUCK_ROUNDS:-1}
THREADS=${THREADS:-8}
NGINX_WORKERS=${NGINX_WORKERS:-2}
PARTS=${PARTS:-1 2 3 4}
part() { [[ " $PARTS " == *" $1 "* ]]; }

if [ -z "${BIN:-}" ]; then
    echo "building release..."
    swift build -c release 2>&1 | tail -n 1
    BIN=$(swift build -c release --show-bin-path)/ryze-events
fi

DIR=$(mktemp -d /tmp/ryze-flow.XXXXXX)
chmod 0755 "$DIR"
DATA=$DIR/data
mkdir -p bench/out "$DIR/recv"
OUT=bench/out/flow.txt
DELIVER_PID=""
STUCK_PID=""
cleanup() {
    [ -n "$DELIVER_PID" ] && kill "$DELIVER_PID" 2>/dev/null || true
    [ -n "$STUCK_PID" ] && kill "$STUCK_PID" 2>/dev/null || true
    [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
    [ -f "$DIR/recv/nginx.pid" ] && kill "$(cat "$DIR/recv/nginx.pid")" 2>/dev/null || true
    for pid in $(pgrep -f "^$BIN serve --data-dir $DATA " || true); do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    # The logs, for a look afterwards (bench/out is not committed).
    cp "$DIR/deliver.log" bench/out/flow-deliver.log 2>/dev/null || true
    cp "$DIR/worker.log" bench/out/flow-worker.log 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
gcc -O2 -Wall -o "$DIR/flow-ws" bench/flow-ws.c

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
RECV_PORT=$(free_port)
STUCK_PORT=$(free_port)
API=http://127.0.0.1:$PORT

# --- the deployment: 2 workers, nginx (NGINX_WORKERS processes) from the local template (nchan, the /ws/ gate, fanout socket)
spawn-fcgi -s "$DIR/ryze.sock" -M 0666 -F 2 -- "$BIN" serve --data-dir "$DATA" --threads "$THREADS" \
    --log-level warning --log-file "$DIR/worker.log" --fanout-socket "$DIR/fanout.sock" --status-path /status \
    --rate-limit 6000000 --publish-rate-limit 6000000 --create-rate-limit 6000000 >/dev/null
# The template's placeholders filled as deploy/local-run.sh and Tests/e2e/harness.py do; room for
# the 1,000 WebSockets (each holds an nginx connection) is the one change.
sed -e "s|@RUN_DIR@|$DIR|g" -e "s|@ROOT@|$ROOT|g" -e "s|@PORT@|$PORT|g" -e "s|@SOCKET@|$DIR/ryze.sock|g" \
    -e "s|@WORKERS@|$NGINX_WORKERS|g" -e "s|@FANOUT_SOCKET@|$DIR/fanout.sock|g" -e "s|@WS_PING_INTERVAL@|30|g" \
    -e "s|@NCHAN_REDIS@|# |g" -e "s|@NCHAN_REDIS_URL@|redis://127.0.0.1:6379|g" \
    -e "s|worker_connections 1024;|worker_connections 4096;|" \
    deploy/nginx-local.conf.template >"$DIR/nginx.conf"
nginx -c "$DIR/nginx.conf" -p "$DIR"

# The healthy webhook receiver: nginx's own 204, keep-alive, no logging.
cat >"$DIR/recv/nginx.conf" <<CONF
worker_processes 1;
error_log $DIR/recv/error.log warn;
pid $DIR/recv/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $DIR/recv/body;
    proxy_temp_path $DIR/recv/proxy;
    fastcgi_temp_path $DIR/recv/fastcgi;
    uwsgi_temp_path $DIR/recv/uwsgi;
    scgi_temp_path $DIR/recv/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$RECV_PORT;
        client_body_buffer_size 64k;
        location / { return 204; }
    }
}
CONF
nginx -c "$DIR/recv/nginx.conf" -p "$DIR/recv"

# The stuck receiver: accepts, reads, never answers.
python3 - "$STUCK_PORT" <<'PY' &
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(1024)
def hold(c):
    while c.recv(65536):
        pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=hold, args=(c,), daemon=True).start()
PY
STUCK_PID=$!

for _ in $(seq 100); do curl -s -o /dev/null "$API/status" && break; sleep 0.1; done

TOKEN=$("$BIN" account create --data-dir "$DATA" --name bench --instance-quota 0)
PUB=$("$BIN" publisher create --data-dir "$DATA" --name bench)
export RYZE_PUB=$PUB

api() {   # api METHOD PATH JSON -> body; fails on a non-2xx
    curl -sf -X "$1" "$API$2" -H "token: $TOKEN" -H 'Content-Type: application/json' -d "$3"
}
hook() {  # hook INSTANCE LABEL URL
    api POST "/api/events/webhook/$1" "{\"label\":\"$2\",\"enabled\":true,\"url\":\"$3\",\"events\":[\"message.exchange\"]}" >/dev/null
}
status_field() { curl -sf "$API/status" | jq -r ".delivery.$1"; }

# Part 1's instances: WebSocket on, no webhook.
part 1 && python3 - "$PORT" "$TOKEN" "$INSTANCES" "$DIR/instances.tsv" <<'PY'
import http.client, json, sys
port, token, n, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", int(port))
with open(path, "w") as f:
    for i in range(n):
        c.request("POST", "/api/instance/new", json.dumps({"name": f"ws{i}", "websocketEnabled": True,
                  "websocketEvents": ["message.exchange"]}), {"token": token})
        r = c.getresponse(); body = json.loads(r.read())
        assert r.status == 201, body
        f.write(f"ws{i}\t{body['instance']['token']}\n")
PY
# Parts 2-4: one instance per queue, webhooks only.
api POST /api/instance/new '{"name":"durable"}' >/dev/null
# The request path's own ceiling in part 2: the same publish to an instance with nothing to queue
# or stream (no fdatasync, no fan-out).
api POST /api/instance/new '{"name":"nohook"}' >/dev/null
hook durable default "http://127.0.0.1:$RECV_PORT/durable"
api POST /api/instance/new '{"name":"one"}' >/dev/null
hook one default "http://127.0.0.1:$RECV_PORT/one"
api POST /api/instance/new '{"name":"two"}' >/dev/null
hook two default "http://127.0.0.1:$RECV_PORT/two"

# --- 1. publish-to-frame latency ---------------------------------------------------------------
if part 1; then
echo "1. latency: $INSTANCES instances x $PER_INSTANCE WebSocket subscribers, $RATE events/s for ${LAT_SECONDS}s over $PUB_CONNS connections..."
# CPU seconds used so far by nginx's workers and by ours (utime + stime from /proc): around the
# run, they say what each event cost each side, whatever else the machine was doing meanwhile.
cpu_seconds() {   # cpu_seconds PID... -> seconds
    local ticks=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        ticks=$((ticks + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
NGINX_PIDS=$(pgrep -P "$(cat "$DIR/nginx.pid")" | tr '\n' ' ')
APP_WORKERS=$(pgrep -f "^$BIN serve --data-dir $DATA " | tr '\n' ' ')
NGINX_CPU0=$(cpu_seconds $NGINX_PIDS); APP_CPU0=$(cpu_seconds $APP_WORKERS)
LAT=$("$DIR/flow-ws" "$PORT" "$PUB" "$DIR/instances.tsv" "$RATE" "$LAT_SECONDS" "$PER_INSTANCE" "$PUB_CONNS")
NGINX_CPU=$(awk -v a="$(cpu_seconds $NGINX_PIDS)" -v b="$NGINX_CPU0" 'BEGIN { printf "%.2f", a - b }')
APP_CPU=$(awk -v a="$(cpu_seconds $APP_WORKERS)" -v b="$APP_CPU0" 'BEGIN { printf "%.2f", a - b }')
echo "   $LAT"
echo "   CPU seconds in that run: nginx workers $NGINX_CPU, ryze-events workers $APP_CPU; load average $(cut -d' ' -f1-3 /proc/loadavg)"
kv() { echo "$LAT" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
LOW_RATE=$((RATE / 10))
echo "   the same at $LOW_RATE events/s for 5 s (the pipeline and the harness unloaded)..."
LAT_LOW=$("$DIR/flow-ws" "$PORT" "$PUB" "$DIR/instances.tsv" "$LOW_RATE" 5 "$PER_INSTANCE" "$PUB_CONNS")
echo "   $LAT_LOW"
kvl() { echo "$LAT_LOW" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
STREAM_FAILURES=$(curl -sf "$API/status" | jq -r '.stream.failures // "?"')
fi

# --- 2. durable publish with one webhook vs raw fdatasync ----------------------------------------
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 {lo=$1} {hi=$1} END {print lo "-" hi}'; }
# wrk TARGET SECONDS -> "req/s p99_ms requests"
wrk_publish() {
    wrk -t1 -c16 -d"$2s" --latency -s bench/publish.lua "$API/api/events/publish/$1" | awk '
        /Requests\/sec/ { rps = $2 }
        /requests in/ { n = $1 }
        / 99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                 p99 = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
        /Non-2xx/ { bad = $NF }
        END { if (bad > 0) { print "non-2xx responses: " bad > "/dev/stderr"; exit 1 } printf "%.0f %.2f %d\n", rps, p99, n }'
}
# Side by side, DUR_ROUNDS times: DURATION/DUR_ROUNDS s of publishing, then bench/run.sh's raw
# fdatasync probe (120-byte write + fdatasync, 2 s) with 16 writers each on a file of its own in
# the data directory (the headline: what the disk gives 16 concurrent writers), with 16 writers
# appending to one shared file (closer to the queue, one log), and with one writer as run.sh
# measures it. The disk is shared and noisy, so each round's ratio is kept: median and range.
ROUND_SECONDS=$(( DURATION / DUR_ROUNDS > 0 ? DURATION / DUR_ROUNDS : 1 ))
if part 3 && ! part 2; then
    echo "2. (the backlog for part 3 only) durable publish, 16 connections, ${DURATION}s..."
    wrk_publish durable "$DURATION" >/dev/null
fi
if part 2; then
echo "2. durable publish with one webhook (deliverer stopped), 16 connections, $DUR_ROUNDS rounds of ${ROUND_SECONDS}s, each beside the fdatasync probes..."
fsync_probes() {
    python3 - "$DATA" <<'PY'
import os, sys, threading, time
def probe(writers, shared, secs=2):
    counts = [0] * writers
    stop = time.time() + secs
    def run(k):
        path = os.path.join(sys.argv[1], "fsync-probe-shared" if shared else f"fsync-probe-{k}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        while time.time() < stop:
            os.write(fd, b"x" * 120); os.fdatasync(fd); counts[k] += 1
        os.close(fd)
    ts = [threading.Thread(target=run, args=(k,)) for k in range(writers)]
    start = time.time()
    for t in ts: t.start()
    for t in ts: t.join()
    for name in os.listdir(sys.argv[1]):
        if name.startswith("fsync-probe"):
            os.unlink(os.path.join(sys.argv[1], name))
    return round(sum(counts) / (time.time() - start))
print(probe(16, False), probe(16, True), probe(1, False))
PY
}
DUR_RATIOS=() SHARED_RATIOS=() PUB_RATES=() FSYNC16S=() FSYNC_SHAREDS=() FSYNC1S=() PUB_P99S=() BARE_RATES=() BARE_RATIOS=()
PUB_N=0
# TRACE=1: the workers' fdatasync, flock, pwrite, accept and write syscalls, recorded with perf
# for up to 3 s of the first round, then bench/commit-trace.py's account of the write path.
TRACE_PID=""
if [ "${TRACE:-0}" = 1 ]; then
    WORKER_PIDS=$(pgrep -f "^$BIN serve --data-dir $DATA " | paste -sd, -)
    TRACE_SECONDS=$(( ROUND_SECONDS > 4 ? 3 : (ROUND_SECONDS > 1 ? ROUND_SECONDS - 1 : 1) ))
fi
for round in $(seq "$DUR_ROUNDS"); do
    if [ "${TRACE:-0}" = 1 ] && [ "$round" = 1 ]; then
        (sleep 0.5; perf record -q -o "$DIR/trace.data" -p "$WORKER_PIDS" \
            -e syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync,syscalls:sys_enter_flock,syscalls:sys_exit_flock \
            -e syscalls:sys_enter_pwrite64,syscalls:sys_exit_pwrite64,syscalls:sys_enter_accept,syscalls:sys_exit_accept \
            -e syscalls:sys_enter_write -- sleep "$TRACE_SECONDS" >/dev/null 2>&1) &
        TRACE_PID=$!
    fi
    read -r rps p99 n < <(wrk_publish durable "$ROUND_SECONDS")
    if [ -n "$TRACE_PID" ]; then
        wait "$TRACE_PID" || true
        TRACE_PID=""
        echo "   the write path during round 1 (TRACE=1):"
        perf script -i "$DIR/trace.data" -F pid,tid,time,event 2>/dev/null | python3 bench/commit-trace.py | sed 's/^/     /' || true
    fi
    read -r f16 fsh f1 < <(fsync_probes)
    read -r bare _ _ < <(wrk_publish nohook "$ROUND_SECONDS")
    BARE_RATES+=("$bare")
    BARE_RATIOS+=("$(awk -v a="$rps" -v b="$bare" 'BEGIN { printf "%.2f", a / b }')")
    PUB_N=$((PUB_N + n))
    PUB_RATES+=("$rps") PUB_P99S+=("$p99") FSYNC16S+=("$f16") FSYNC_SHAREDS+=("$fsh") FSYNC1S+=("$f1")
    DUR_RATIOS+=("$(awk -v a="$rps" -v b="$f16" 'BEGIN { printf "%.2f", a / b }')")
    SHARED_RATIOS+=("$(awk -v a="$rps" -v b="$fsh" 'BEGIN { printf "%.2f", a / b }')")
    echo "   round $round: $rps publishes/s (p99 $p99 ms), raw fdatasync/s: $f16 with 16 writers on 16 files (ratio ${DUR_RATIOS[-1]}), $fsh on one file (${SHARED_RATIOS[-1]}), $f1 with one writer; $bare/s without a webhook (${BARE_RATIOS[-1]})"
done
fi

# --- 3. deliverer throughput ------------------------------------------------------------------
start_deliverer() {
    "$BIN" deliver --data-dir "$DATA" --log-file "$DIR/deliver.log" --allow-private-targets "$@" \
        </dev/null 2>>"$DIR/deliver.log" &
    DELIVER_PID=$!
}
stop_deliverer() { kill -TERM "$DELIVER_PID"; wait "$DELIVER_PID" || true; DELIVER_PID=""; }
# drain BASE TARGET T0 [LIMIT]: waits until the deliverer's `delivered` total (BASE before it
# started) reaches TARGET (polling the status page every 50 ms), or LIMIT seconds after T0 ->
# "seconds-from-T0 seconds-from-the-first-delivery deliveries-since-BASE"
drain() {
    python3 - "$PORT" "$1" "$2" "$3" "${4:-120}" <<'PY'
import http.client, json, sys, time
port, base, target, t0, limit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
c = http.client.HTTPConnection("127.0.0.1", port)
def delivered():
    c.request("GET", "/status")
    return json.loads(c.getresponse().read())["delivery"]
first = None
while True:
    d = delivered()
    now = time.time()
    if first is None and d["delivered"] > base:
        first = now
    if d["delivered"] >= target or now - t0 >= limit:
        print(f"{now - t0:.3f} {now - (first or t0):.3f} {d['delivered'] - base}"); sys.exit(0)
    time.sleep(0.05)
PY
}
if part 3; then
QUEUED=$(status_field queued)
DELIVERED0=$(status_field delivered)
echo "3. deliverer: $QUEUED queued deliveries, deliver --concurrency 32 --per-endpoint 32 into nginx return 204..."
T0=$(date +%s.%N)
start_deliverer --concurrency 32 --per-endpoint 32
read -r DRAIN_ALL DRAIN_FIRST DRAIN_N < <(drain "$DELIVERED0" $((DELIVERED0 + QUEUED)) "$T0")
stop_deliverer
DELIVER_RPS=$(awk -v n="$DRAIN_N" -v t="$DRAIN_ALL" 'BEGIN { printf "%.0f", n / t }')
[ "$DRAIN_N" -lt "$QUEUED" ] && echo "   NOT drained: $DRAIN_N of $QUEUED delivered within 120 s"
echo "   drained in ${DRAIN_ALL}s from the deliverer's start: $DELIVER_RPS deliveries/s"
fi

# --- 4. a stuck endpoint ------------------------------------------------------------------------
# fill INSTANCE: publishes with wrk for FILL_SECONDS, -> events published
fill() { read -r _ _ n < <(wrk_publish "$1" "$FILL_SECONDS"); echo "$n"; }
# measure_drain INSTANCE [finish] -> "healthy-deliveries/s events delivered-in-the-window": the
# instance's healthy label (its only one on the 204 receiver) delivered per second from the
# deliverer's start until all were delivered or STUCK_WINDOW seconds passed. The deliverer's rate falls with the backlog's size,
# so both runs start from about the same backlog of healthy deliveries.
STUCK_FLAGS=(--concurrency 32 --per-endpoint 16 --webhook-timeout 2)
measure_drain() {
    local n d0 t0 all _first got
    n=$(fill "$1")
    d0=$(status_field delivered)
    t0=$(date +%s.%N)
    start_deliverer "${STUCK_FLAGS[@]}"
    read -r all _first got < <(drain "$d0" $((d0 + n)) "$t0" "$STUCK_WINDOW")
    # The healthy-alone run leaves nothing behind for the next one to count: the rest of its
    # backlog is delivered (unmeasured) before the deliverer stops.
    [ "${2:-}" = finish ] && drain "$d0" $((d0 + n)) "$t0" 300 >/dev/null
    stop_deliverer
    awk -v n="$got" -v t="$all" -v e="$n" 'BEGIN { printf "%.0f %d %d\n", n / t, e, n }'
}
if part 4; then
echo "4. stuck endpoint: deliver ${STUCK_FLAGS[*]}, $STUCK_ROUNDS rounds of (healthy alone, healthy + stuck)..."
HEALTHY=() WITH_STUCK=() RATIOS=()
for round in $(seq "$STUCK_ROUNDS"); do
    read -r h hn hgot < <(measure_drain one finish)
    hook two stuck "http://127.0.0.1:$STUCK_PORT/stuck"
    read -r s sn sgot < <(measure_drain two)
    if (( round < STUCK_ROUNDS )); then
        # Leave no stuck deliveries for the next round: delete the label, let a deliverer drop them.
        curl -sf -X DELETE "$API/api/events/webhook/two?label=stuck" -H "token: $TOKEN" >/dev/null
        start_deliverer "${STUCK_FLAGS[@]}"
        for _ in $(seq 150); do [ "$(status_field queued)" = 0 ] && [ "$(status_field retrying)" = 0 ] && break; sleep 0.1; done
        stop_deliverer
    fi
    HEALTHY+=("$h") WITH_STUCK+=("$s")
    RATIOS+=("$(awk -v a="$s" -v b="$h" 'BEGIN { printf "%.2f", a / b }')")
    echo "   round $round: healthy alone $h/s ($hgot of $hn), with a stuck endpoint $s/s ($sgot of $sn, + $sn stuck): ${RATIOS[-1]}"
done
H_MED=$(echo "${HEALTHY[*]}" | median)
S_MED=$(echo "${WITH_STUCK[*]}" | median)
STUCK_RATIO=$(awk -v a="$S_MED" -v b="$H_MED" 'BEGIN { printf "%.2f", a / b }')
fi

# --- summary --------------------------------------------------------------------------------
met() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }
{
    echo "ryze-events event-flow benchmark (parts $PARTS), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -m); every process on this machine; nginx workers $NGINX_WORKERS, $THREADS threads x 2 ryze-events workers"
    printf '%-44s %-34s %-16s %s\n' "measure" "figure" "goal" "verdict"
    if part 1; then
    P50=$(kv p50); P99=$(kv p99); MAX=$(kv max); ACH=$(kv rate); FRAMES=$(kv frames); EXPECTED=$(kv expected)
    printf '%-44s %-34s %-16s %s\n' "publish-to-frame p99 ($INSTANCES inst x $PER_INSTANCE subs)" \
        "$P99 ms at $ACH ev/s" "<= 20 ms @ $RATE" "$(met "$P99 <= 20 && $ACH >= 0.95 * $RATE && $FRAMES == $EXPECTED")"
    printf '%-44s %-34s\n' "  p50 / max; publisher's own lag p99" "$P50 / $MAX ms; $(kv lag_p99) ms"
    printf '%-44s %-34s\n' "  at $(kvl rate) ev/s: p50 / p99 / max" "$(kvl p50) / $(kvl p99) / $(kvl max) ms; frames $(kvl frames) / $(kvl expected)"
    printf '%-44s %-34s\n' "  frames received / expected" "$FRAMES / $EXPECTED (accepted $(kv accepted) of $(kv sent); $(kv statuses)); stream.failures $STREAM_FAILURES"
    printf '%-44s %-34s\n' "  CPU per event (us): nginx / workers / harness" "$(awk -v n="$(kv sent)" -v a="$NGINX_CPU" -v b="$APP_CPU" -v c="$(kv cpu)" 'BEGIN { printf "%.0f / %.0f / %.0f", a * 1e6 / n, b * 1e6 / n, c * 1e6 / n }')"
    fi
    if part 2; then
    DUR_RATIO=$(echo "${DUR_RATIOS[*]}" | median)
    PUB_RPS=$(echo "${PUB_RATES[*]}" | median); FSYNC16=$(echo "${FSYNC16S[*]}" | median)
    printf '%-44s %-34s %-16s %s\n' "durable publish, 1 webhook / raw fdatasync" "$DUR_RATIO ($(echo "${DUR_RATIOS[*]}" | spread); $PUB_RPS vs $FSYNC16/s)" ">= 0.5" "$(met "$DUR_RATIO >= 0.5")"
    printf '%-44s %-34s\n' "  rounds: publishes/s; fdatasync/s 16 files" "${PUB_RATES[*]}; ${FSYNC16S[*]}"
    printf '%-44s %-34s\n' "  vs the same publish without a webhook" "$(echo "${BARE_RATIOS[*]}" | median) ($(echo "${BARE_RATIOS[*]}" | spread); ${BARE_RATES[*]}/s)"
    printf '%-44s %-34s\n' "  vs 16 writers on one shared file" "$(echo "${SHARED_RATIOS[*]}" | median) ($(echo "${SHARED_RATIOS[*]}" | spread); ${FSYNC_SHAREDS[*]}/s); one writer ${FSYNC1S[*]}/s; publish p99 ${PUB_P99S[*]} ms"
    fi
    if part 3; then
    printf '%-44s %-34s %-16s %s\n' "deliverer, deliveries/s (c32, pe32)" "$DELIVER_RPS ($QUEUED in ${DRAIN_ALL}s)" ">= 3000/s" "$(met "$DELIVER_RPS >= 3000")"
    fi
    if part 4; then
    printf '%-44s %-34s %-16s %s\n' "healthy rate with stuck / without (c32 pe16)" "$STUCK_RATIO ($S_MED vs $H_MED/s, medians)" ">= 0.90" "$(met "$STUCK_RATIO >= 0.9")"
    printf '%-44s %-34s\n' "  rounds (with / without)" "${RATIOS[*]}"
    fi
    echo
} | tee -a "$OUT"
echo "(appended to $OUT)"
