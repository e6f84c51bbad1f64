#!/usr/bin/env bash
# One command to a working local deployment: installs what is missing, builds a release binary,
# starts WORKERS ryze-events workers (spawn-fcgi + multiwatch, which restarts any that dies) and
# nginx on 127.0.0.1:PORT, creates an account and prints its token.
#
#   deploy/local-run.sh          start (or restart) the deployment
#   deploy/local-run.sh stop     stop it
#   deploy/local-run.sh status   show what runs
#
# Environment: PORT (8080), WORKERS (2), THREADS (8), RYZE_DATA_DIR (./data),
# RYZE_RUN_DIR (/tmp/ryze-events-local: sockets, pids, logs; nginx's user must reach it),
# WS_ORIGINS (space-separated browser origins allowed to open /ws/:instance; default: this
# deployment's own, http://127.0.0.1:PORT and http://localhost:PORT), RYZE_REDIS (redis://HOST:PORT:
# one host of several, README "More than one host": the rate-limit buckets and nginx's fan-out on
# that Redis; unset, one host).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${PORT:-8080}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-8}
DATA_DIR=${RYZE_DATA_DIR:-$ROOT/data}
RUN_DIR=${RYZE_RUN_DIR:-/tmp/ryze-events-local}
SOCKET=$RUN_DIR/ryze-events.sock
# nginx's nchan publisher: the workers hand events for /ws subscribers to it.
FANOUT_SOCKET=$RUN_DIR/fanout.sock
redis_args=()
NCHAN_REDIS="# "
if [ -n "${RYZE_REDIS:-}" ]; then
    redis_args=(--rate-limit-store "$RYZE_REDIS")
    NCHAN_REDIS=""
fi
ws_origin_args=()
for origin in ${WS_ORIGINS-http://127.0.0.1:$PORT http://localhost:$PORT}; do ws_origin_args+=(--ws-origin "$origin"); done

stop() {
    stop_deliverer
    if [ -f "$RUN_DIR/nginx.pid" ]; then
        nginx -c "$RUN_DIR/nginx.conf" -p "$RUN_DIR" -s quit 2>/dev/null || true
    fi
    if [ -f "$RUN_DIR/multiwatch.pid" ]; then
        kill -TERM "$(cat "$RUN_DIR/multiwatch.pid")" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$(cat "$RUN_DIR/multiwatch.pid")" 2>/dev/null || break; sleep 0.1; done
        rm -f "$RUN_DIR/multiwatch.pid"
    fi
    rm -f "$SOCKET"
}

# --- The webhook deliverer (`ryze-events deliver`): one per data directory, kept alive by a small
# supervision loop (multiwatch does this for the workers), which `stop` ends. DELIVER_ARGS is
# appended to its command line, e.g. DELIVER_ARGS=--allow-private-targets to deliver to receivers
# on this machine (refused by default). Log: $RUN_DIR/deliver.log.
start_deliverer() {
    (
        child=""
        trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait 2>/dev/null; exit 0' TERM INT
        while :; do
            # shellcheck disable=SC2086  # DELIVER_ARGS is a list of flags
            "$BIN" deliver --data-dir "$DATA_DIR" --log-file "$RUN_DIR/deliver.log" ${DELIVER_ARGS:-} </dev/null 2>>"$RUN_DIR/deliver.log" &
            child=$!
            wait "$child" || true
            sleep 1   # then start it again, whatever ended it (the queue on disk is its only state)
        done
    ) >/dev/null 2>&1 &
    echo $! >"$RUN_DIR/deliver-supervisor.pid"
}

stop_deliverer() {
    [ -f "$RUN_DIR/deliver-supervisor.pid" ] || return 0
    local pid
    pid=$(cat "$RUN_DIR/deliver-supervisor.pid")
    kill -TERM "$pid" 2>/dev/null || true
    # Attempts in flight finish within the deliverer's --webhook-timeout (15 s by default).
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$RUN_DIR/deliver-supervisor.pid"
}

case "${1:-start}" in
stop)
    stop
    echo "stopped"
    exit 0
    ;;
status)
    pgrep -a -f "ryze-events serve --data-dir $DATA_DIR" || echo "no workers"
    [ -f "$RUN_DIR/nginx.pid" ] && echo "nginx pid $(cat "$RUN_DIR/nginx.pid")" || echo "no nginx"
    pgrep -a -f "ryze-events deliver --data-dir $DATA_DIR" || echo "no deliverer"
    exit 0
    ;;
start) ;;
*)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac

deploy/install-deps.sh
echo "building release binary..."
swift build -c release --product ryze-events 2>&1 | tail -n 1
BIN=$(swift build -c release --show-bin-path)/ryze-events

stop
mkdir -p "$RUN_DIR"
chmod 0755 "$RUN_DIR"

spawn-fcgi -s "$SOCKET" -M 0666 -P "$RUN_DIR/multiwatch.pid" -- \
    "$(command -v multiwatch)" -f "$WORKERS" -- \
    "$BIN" serve --data-dir "$DATA_DIR" --threads "$THREADS" --log-file "$RUN_DIR/ryze-events.log" \
    --fanout-socket "$FANOUT_SOCKET" ${ws_origin_args[@]+"${ws_origin_args[@]}"} ${redis_args[@]+"${redis_args[@]}"} >/dev/null

sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@ROOT@|$PWD|g" -e "s|@PORT@|$PORT|g" -e "s|@SOCKET@|$SOCKET|g" -e "s|@WORKERS@|2|g" \
    -e "s|@FANOUT_SOCKET@|$FANOUT_SOCKET|g" -e "s|@WS_PING_INTERVAL@|30|g" \
    -e "s|@NCHAN_REDIS@|$NCHAN_REDIS|g" -e "s|@NCHAN_REDIS_URL@|${RYZE_REDIS:-redis://127.0.0.1:6379}|g" \
    deploy/nginx-local.conf.template >"$RUN_DIR/nginx.conf"
nginx -c "$RUN_DIR/nginx.conf" -p "$RUN_DIR"

for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.1
done
start_deliverer

name=local
if "$BIN" account list --data-dir "$DATA_DIR" | cut -f1 | grep -qx local; then name="local-$(date +%s)"; fi
TOKEN=$("$BIN" account create --data-dir "$DATA_DIR" --name "$name")

cat <<MSG

ryze-events is running on http://127.0.0.1:$PORT ($WORKERS workers x $THREADS threads, data in $DATA_DIR)
account "$name", token (shown once, keep it):

    $TOKEN

try:
    curl -s -X POST http://127.0.0.1:$PORT/api/instance/new -H 'token: $TOKEN' -d '{"name":"demo","websocketEnabled":true}'
    curl -s http://127.0.0.1:$PORT/api/events/getWebsocket/demo -H 'token: $TOKEN'
stream (WebSocket, one text frame per event): ws://127.0.0.1:$PORT/ws/demo?token=$TOKEN
    e.g. wsdump ws://127.0.0.1:$PORT/ws/demo -r --headers 'token: $TOKEN'    (wsdump: pip's websocket-client)

logs: $RUN_DIR/ryze-events.log and $RUN_DIR/nginx-error.log
stop: deploy/local-run.sh stop
webhooks: delivered by \`ryze-events deliver\` (log $RUN_DIR/deliver.log; DELIVER_ARGS=--allow-private-targets for receivers on this machine)
MSG
