"""The log shared by every worker: restarts, read-your-writes, the CLI while workers run."""
import concurrent.futures
import os
import signal
import subprocess
import time

import pytest

from harness import BIN, Deployment


def test_state_survives_restart_of_all_workers(fresh):
    d = fresh(workers=2)
    t = d.account("persist")
    keep = d.create_instance(t, "keep")
    d.request("POST", "/api/events/websocket/keep", token=t, body={"enabled": True, "events": ["group.flow"], "mediaBase64": True})
    d.create_instance(t, "drop")
    d.request("DELETE", "/api/instance/delete/drop", token=t)
    off = d.account("off")
    d.cli("account", "disable", "off")
    d.restart_workers()
    r = d.request("GET", "/api/events/getWebsocket/keep", token=keep)
    assert r.json["websocket"] == {"enabled": True, "events": ["group.flow"], "mediaBase64": True}
    assert [i["name"] for i in d.request("GET", "/api/instance/list", token=t).json["instances"]] == ["keep"]
    assert d.request("GET", "/api/instance/list", token=off).message == "Invalid token"
    if not d.shared:
        assert d.cli("log", "verify").stdout.startswith("ok: ")


def test_read_your_writes_across_workers(fresh):
    d = fresh(workers=3, threads=2)
    t = d.account("ryw")
    d.create_instance(t, "i")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for round_ in range(15):
            events = [["call.update"], ["group.flow"], ["label.update"]][round_ % 3]
            assert d.request("POST", "/api/events/websocket/i", token=t, body={"enabled": True, "events": events}).status == 200
            reads = list(pool.map(lambda _: d.request("GET", "/api/events/getWebsocket/i", token=t), range(12)))
            assert all(r.json["websocket"]["events"] == events for r in reads), [r.body for r in reads]


def test_account_created_while_running_works_at_once(deployment):
    t = deployment.account("live")
    for _ in range(6):
        assert deployment.request("GET", "/api/instance/list", token=t).status == 200


def test_account_cli(deployment):
    r = deployment.cli("account", "create", "--name", "dupe-acct")
    r = deployment.cli("account", "create", "--name", "dupe-acct", check=False)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "already exists" in r.stderr
    r = deployment.cli("account", "create", "--name", "bad name", check=False)
    assert r.returncode != 0
    chosen = "operator-chosen-token-01"
    assert deployment.account("chosen-acct", token=chosen) == chosen
    listing = deployment.cli("account", "list").stdout
    assert "chosen-acct\tactive\t0\t100" in listing and chosen not in listing
    deployment.cli("account", "disable", "chosen-acct")
    assert deployment.request("GET", "/api/instance/list", token=chosen).message == "Invalid token"
    assert "chosen-acct\tdisabled" in deployment.cli("account", "list").stdout
    assert deployment.cli("account", "disable", "nobody-here", check=False).returncode != 0


@pytest.mark.one_host("the log tools")
def test_log_cli_while_running(deployment, acct):
    deployment.create_instance(acct, "l")
    for i in range(5):
        deployment.request("POST", "/api/events/websocket/l", token=acct, body={"enabled": i % 2 == 0})
    dump = deployment.cli("log", "dump").stdout
    assert "websocket.saved" in dump and acct not in dump
    assert deployment.cli("log", "verify").returncode == 0
    out = deployment.cli("log", "compact").stdout
    assert out.startswith("compacted: ")
    # Workers switch to the compacted file and keep serving and writing.
    assert deployment.request("GET", "/api/events/getWebsocket/l", token=acct).json["websocket"]["enabled"] is True
    assert deployment.request("POST", "/api/events/websocket/l", token=acct, body={"enabled": False}).status == 200
    for _ in range(6):
        assert deployment.request("GET", "/api/events/getWebsocket/l", token=acct).json["websocket"]["enabled"] is False


def test_cli_usage_errors():
    for args in [["serve", "--threads", "0"], ["serve", "--listen", "nowhere"], ["bogus"], ["account", "create"],
                 ["serve", "--rate-limit", "x"]]:
        r = subprocess.run([BIN, *args], capture_output=True, text=True)
        assert r.returncode == 64, args   # ArgumentParser's usage-error code
        # SPEC §5: a one-line reason, not the reason followed by help and usage lines.
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("ryze-events: "), (args, r.stderr)
    for args in [["--help"], ["serve", "--help"], ["account", "create", "--help"], ["log", "compact", "--help"]]:
        r = subprocess.run([BIN, *args], capture_output=True, text=True)
        assert r.returncode == 0 and "--data-dir" in r.stdout or args == ["--help"], args


def test_serve_without_socket_explains(tmp_path):
    r = subprocess.run([BIN, "serve", "--data-dir", str(tmp_path / "d")], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert r.returncode != 0
    assert "spawn-fcgi" in r.stderr


def test_sigterm_stops_an_idle_worker_promptly(tmp_path):
    sock = tmp_path / "w.sock"
    p = subprocess.Popen([BIN, "serve", "--data-dir", str(tmp_path / "d"), "--listen", f"unix:{sock}", "--threads", "4"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    Deployment.wait_for(sock.exists, "socket")
    time.sleep(0.3)
    start = time.time()
    p.send_signal(signal.SIGTERM)
    assert p.wait(5) == 0
    assert time.time() - start < 1.5


def test_multiwatch_replaces_a_killed_worker(fresh):
    d = fresh(workers=2, supervisor="multiwatch")
    t = d.account("mw")
    victim = d.worker_pids()[0]
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    d.wait_for(lambda: len(d.worker_pids()) == 2 and victim not in d.worker_pids(), "a replacement worker", 5)
    assert time.monotonic() - killed < 1.0
    for _ in range(10):
        assert d.request("GET", "/api/instance/list", token=t).status == 200
