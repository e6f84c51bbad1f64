#!/usr/bin/env python3
"""Deliverer throughput with the queue in PostgreSQL (`--store`) next to the data directory's
queue, one command:  RYZE_BIN=<release ryze-events> python3 bench/pgqueue.py   (loopback only)

Starts a throwaway PostgreSQL (Tests/e2e/pg_server.py, with fsync turned back on so that its
commits are as durable as the local queue's fdatasync), a receiver nginx answering `return 204`,
and two deployments through Tests/e2e/harness.py (2 spawn-fcgi workers behind nginx each): one
on its data directory, one with --store. Each round, for each of three set-ups in turn (the order
reversed every other round): FILL seconds of durable publishing with wrk (bench/publish.lua, 16
connections) build a backlog with no deliverer running, then the deliverer(s) start and the
backlog's drain is timed from their start until the status page shows it empty:
  local  one `deliver --concurrency 32 --per-endpoint 32` on the data directory's queue;
  pg-1   one such deliverer on the PostgreSQL queue;
  pg-2   two such deliverers (two data directories, one host) sharing the PostgreSQL queue.
Settings: ROUNDS (3), FILL (3 s). Prints each round and the medians; appends them to
bench/out/pgqueue.txt.
"""
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
from harness import BIN, Deployment, free_port  # noqa: E402
from pg_server import PgServer  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
FILL = int(os.environ.get("FILL", "3"))
LIMITS = ["--rate-limit", "6000000", "--publish-rate-limit", "6000000", "--create-rate-limit", "6000000",
          "--status-path", "/status", "--log-level", "warning"]
DELIVER = ["--concurrency", "32", "--per-endpoint", "32", "--allow-private-targets"]


def receiver():
    d = pathlib.Path(tempfile.mkdtemp(prefix="ryze-recv-"))
    port = free_port()
    (d / "nginx.conf").write_text(f"""worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    keepalive_requests 1000000; keepalive_timeout 120s;
    server {{ listen 127.0.0.1:{port}; client_body_buffer_size 64k; location / {{ return 204; }} }}
}}
""")
    subprocess.run(["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)], check=True)
    return d, port


def delivery(d):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.port}/status", timeout=5) as r:
        return json.loads(r.read())["delivery"]


def prepare(d, store, recv_port):
    extra = ["--store", store] if store else []
    token = d.cli("account", "create", "--name", "bench", "--instance-quota", "0", *extra).stdout.strip()
    for _ in range(100):
        if d.request("GET", "/api/instance/list", token=token).status == 200:
            break
        time.sleep(0.05)
    d.create_instance(token, "q")
    r = d.request("POST", "/api/events/webhook/q", token=token,
                  body={"label": "default", "enabled": True, "url": f"http://127.0.0.1:{recv_port}/q", "events": ["message.exchange"]})
    assert r.status == 200, r
    return d.cli("publisher", "create", "--name", "bench", *extra).stdout.strip()


def fill(d, publisher):
    env = dict(os.environ, RYZE_PUB=publisher)
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{FILL}s", "-s", str(ROOT / "bench" / "publish.lua"),
                          f"http://127.0.0.1:{d.port}/api/events/publish/q"], env=env, capture_output=True, text=True, check=True).stdout
    assert "Non-2xx" not in out, out


def drain(d, data_dirs, store):
    backlog = delivery(d)["queued"]
    extra = ["--store", store] if store else []
    procs = []
    t0 = time.monotonic()
    for k, data in enumerate(data_dirs):
        procs.append(subprocess.Popen([BIN, "deliver", "--data-dir", str(data), "--log-file", str(data) + f"/../deliver{k}.log",
                                       *DELIVER, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    while True:
        s = delivery(d)
        if s["queued"] == 0 and s["retrying"] == 0:
            break
        if time.monotonic() - t0 > 300:
            raise RuntimeError(f"not drained: {s}")
        time.sleep(0.02)
    took = time.monotonic() - t0
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    # The deliverers' logs, for a look afterwards (bench/out is not committed).
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    for k, data in enumerate(data_dirs):
        shutil.copy(str(data) + f"/../deliver{k}.log", out / f"pgqueue-{'pg' if store else 'local'}-{len(data_dirs)}-deliver{k}.log")
    return backlog, took


def main():
    pg = PgServer().start()
    pg.psql("ALTER SYSTEM SET fsync = on")
    pg.psql("SELECT pg_reload_conf()")
    recv_dir, recv_port = receiver()
    made = []
    try:
        url = pg.database()
        local = Deployment(workers=2, threads=8, args=LIMITS).start()
        made.append(local)
        shared = Deployment(workers=2, threads=8, args=LIMITS + ["--store", url])
        made.append(shared)
        shared.data.mkdir(parents=True)
        key = os.urandom(32)
        second = shared.dir / "data2"
        for data in (shared.data, second):
            data.mkdir(parents=True, exist_ok=True)
            (data / "secret.key").write_bytes(key)
            os.chmod(data / "secret.key", 0o600)
        shared.start()
        pubs = {"local": prepare(local, None, recv_port), "pg": prepare(shared, url, recv_port)}
        setups = {
            "local": (local, [local.data], None, pubs["local"]),
            "pg-1": (shared, [shared.data], url, pubs["pg"]),
            "pg-2": (shared, [shared.data, second], url, pubs["pg"]),
        }
        rates = {k: [] for k in setups}
        lines = []
        for r in range(ROUNDS):
            order = list(setups) if r % 2 == 0 else list(reversed(setups))
            for name in order:
                d, dirs, store, pub = setups[name]
                fill(d, pub)
                n, took = drain(d, dirs, store)
                rates[name].append(n / took)
                line = f"round {r + 1} {name}: {n} deliveries drained in {took:.2f}s = {n / took:.0f}/s"
                print(line, flush=True)
                lines.append(line)
        summary = "medians: " + ", ".join(f"{k} {statistics.median(v):.0f}/s ({min(v):.0f}-{max(v):.0f})" for k, v in rates.items())
        print(summary)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        with open(out / "pgqueue.txt", "a") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f" ROUNDS={ROUNDS} FILL={FILL}\n")
            f.write("\n".join(lines + [summary]) + "\n\n")
    finally:
        for d in made:
            d.close()
        pid = recv_dir / "nginx.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGTERM)
        shutil.rmtree(recv_dir, ignore_errors=True)
        pg.stop()


if __name__ == "__main__":
    main()
