"""Operations: supervision, rolling restarts, recycling, read timeouts, status page, logs, systemd unit."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time

import pytest

from harness import BIN, ROOT, Deployment


def run_load(d, token, stop, results, path="/api/instance/list"):
    while not stop.is_set():
        try:
            r = d.request("GET", path, token=token)
            results.append(r.status)
        except Exception as e:
            results.append(repr(e))


def test_rolling_restart_under_load_fails_no_request(fresh):
    d = fresh(workers=3, threads=4, supervisor="multiwatch")
    t = d.account("rolling")
    d.create_instance(t, "i", websocketEnabled=True)
    before = set(d.worker_pids())
    stop, results = threading.Event(), []
    clients = [threading.Thread(target=run_load, args=(d, t, stop, results, "/api/events/getWebsocket/i")) for _ in range(6)]
    for c in clients:
        c.start()
    time.sleep(0.5)
    out = subprocess.run([str(ROOT / "deploy" / "rolling-restart.sh"), str(d.multiwatch.pid), "0.3"],
                         capture_output=True, text=True, timeout=120)
    time.sleep(0.5)
    stop.set()
    for c in clients:
        c.join(30)
    assert out.returncode == 0, out.stderr
    after = set(d.worker_pids())
    assert len(after) == 3 and not (before & after), (before, after)
    assert len(results) > 100
    failures = [s for s in results if s != 200]
    assert failures == [], failures[:5]


def test_max_requests_recycles_workers(fresh):
    # Each recycled worker lives well under multiwatch's -t: allow more quick restarts than its
    # default 3, as the README advises for --max-requests.
    d = fresh(workers=2, threads=2, supervisor="multiwatch", multiwatch_args=["-r", "50"],
              args=["--max-requests", "10", "--rate-limit", "60000"])
    t = d.account("recycle")
    first = set(d.worker_pids())
    statuses = [d.request("GET", "/api/instance/list", token=t).status for _ in range(45)]
    assert statuses == [200] * 45
    d.wait_for(lambda: len(d.worker_pids()) == 2, "replacements")
    assert not (first & set(d.worker_pids()))
    assert "reached --max-requests" in d.log.read_text()


def test_read_timeout_frees_a_thread_held_by_a_silent_peer(fresh):
    d = fresh(workers=1, threads=1, args=["--read-timeout", "1"])
    t = d.account("timeout")
    # A peer that connects and sends half a FastCGI record, then nothing.
    stuck = socket.socket(socket.AF_UNIX)
    stuck.connect(str(d.sock))
    stuck.sendall(b"\x01\x01\x00\x01")
    time.sleep(0.1)
    start = time.monotonic()
    r = d.request("GET", "/api/instance/list", token=t)
    assert r.status == 200
    assert time.monotonic() - start < 3
    stuck.settimeout(3)
    assert stuck.recv(100) == b""   # the worker dropped it
    # A body that never finishes arriving is dropped the same way.
    body_peer = socket.socket(socket.AF_UNIX)
    body_peer.connect(str(d.sock))

    def rec(kind, content):
        return bytes([1, kind, 0, 1, len(content) >> 8, len(content) & 255, 0, 0]) + content

    def nv(k, v):
        return bytes([len(k), len(v)]) + k + v
    params = nv(b"REQUEST_METHOD", b"POST") + nv(b"REQUEST_URI", b"/api/instance/new") + nv(b"CONTENT_LENGTH", b"100")
    body_peer.sendall(rec(1, b"\x00\x01\x00\x00\x00\x00\x00\x00") + rec(4, params) + rec(4, b"") + rec(5, b"{\"na"))
    body_peer.settimeout(4)
    data = b""
    while chunk := body_peer.recv(4096):   # closed by the worker, not left hanging
        data += chunk
    assert b"Status: 20" not in data
    assert d.request("GET", "/api/instance/list", token=t).status == 200


def test_status_page_moves(fresh):
    d = fresh(workers=1, threads=3, args=["--status-path", "/status", "--rate-limit", "60000"])
    t = d.account("status")
    d.create_instance(t, "s")
    first = d.request("GET", "/status").json
    assert first["pid"] == d.worker_pids()[0]
    assert first["threads"]["total"] == 3 and first["threads"]["busy"] == 1
    assert first["accounts"] >= 1 and first["instances"] == 1 and first["log"]["records"] >= 2
    if d.shared:
        # The buckets are in Redis: no table to report, only the store's failures.
        assert first["rateLimit"] == {"storeFailures": 0}
    else:
        assert first["rateLimit"]["slots"] == 65536 and first["rateLimit"]["liveBuckets"] >= 1
    for _ in range(5):
        d.request("GET", "/api/instance/list", token=t)
    second = d.request("GET", "/status").json
    assert second["requestsServed"] >= first["requestsServed"] + 6
    assert second["uptimeSeconds"] >= 0
    prom = d.request("GET", "/status?format=prometheus")
    assert prom.status == 200 and prom.headers["content-type"].startswith("text/plain")
    text = prom.body.decode()
    assert "# TYPE ryze_events_requests_served counter" in text
    assert f'ryze_events_instances{{pid="{first["pid"]}"}} 1' in text
    # Off by default: an ordinary unknown route.
    assert d.request("GET", "/status").status == 200


def test_status_page_is_off_by_default(deployment):
    assert deployment.request("GET", "/status").json == {"success": False, "error": {"message": "Route not found"}}


def test_access_log_has_no_tokens(deployment, acct):
    deployment.request("GET", f"/api/instance/list?token={acct}")
    deployment.request("GET", "/api/events/getWebsocket/zzz", token=acct)
    time.sleep(0.2)
    log = deployment.log.read_text()
    assert "ryze.access: GET /api/instance/list 200" in log
    assert "ryze.access: GET /api/events/getWebsocket/zzz 404" in log
    assert acct not in log


def test_systemd_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    unit = (ROOT / "deploy" / "ryze-events.service").read_text()
    unit = unit.replace("/usr/local/bin/ryze-events", BIN).replace(
        "/usr/local/lib/ryze-events/rolling-restart.sh", str(ROOT / "deploy" / "rolling-restart.sh"))
    path = tmp_path / "ryze-events.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ryze-events" not in r.stderr, r.stderr


def test_nginx_conf_example_passes_nginx_t_with_its_params_file(tmp_path):
    # As install-systemd.sh lays it out: the site next to ryze-events-fastcgi-params and
    # ryze-events-errors.conf, nchan loaded as Debian's modules-enabled does. `nginx -t` binds the
    # listening sockets: the fanout socket's directory (the service's RuntimeDirectory) is moved
    # into tmp_path.
    shutil.copy(ROOT / "deploy" / "fastcgi_params.ryze-events", tmp_path / "ryze-events-fastcgi-params")
    shutil.copy(ROOT / "deploy" / "nginx-errors.conf", tmp_path / "ryze-events-errors.conf")
    site = (ROOT / "nginx.conf.example").read_text()
    assert "listen unix:/run/ryze-events/fanout.sock;" in site
    assert "/var/log/nginx/ryze-events.access.log" in site   # moved too: nginx -t opens it
    (tmp_path / "site.conf").write_text(site.replace("/run/ryze-events/fanout.sock", f"{tmp_path}/fanout.sock")
                                        .replace("/var/log/nginx/ryze-events.access.log", f"{tmp_path}/access.log"))
    (tmp_path / "nginx.conf").write_text(
        "load_module /usr/lib/nginx/modules/ngx_nchan_module.so;\n"
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ include {tmp_path / 'site.conf'}; }}\n")
    r = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_params_file_forwards_every_header_the_api_reads(deployment, acct):
    # Request headers are not forwarded wholesale: token, Authorization and Origin are listed.
    assert deployment.request("GET", "/api/instance/list", headers={"token": acct}).status == 200
    assert deployment.request("GET", "/api/instance/list", headers={"Authorization": f"Bearer {acct}"}).status == 200
    assert deployment.request("GET", f"/api/instance/list?token={acct}").status == 200
    assert deployment.request("GET", "/api/instance/list", headers={"X-Other": acct}).status == 401
