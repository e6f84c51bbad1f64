"""The log's promises (README "The data directory and its promises"), each broken for real."""
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from harness import BIN, Deployment

EVENTS = ["message.exchange", "message.status", "call.update", "group.flow", "instance.state", "label.update"]


def value(n):
    """A distinct, valid configuration for each n < 128 (which events, and mediaBase64)."""
    n = n % 127 + 1
    return {"enabled": True, "events": [e for i, e in enumerate(EVENTS) if n >> i & 1], "mediaBase64": bool(n & 64)}


def account_with_instances(d, account, prefix, count):
    """A new account holding `count` instances named prefix0, prefix1...: (token, names)."""
    t = d.account(account)
    names = [f"{prefix}{k}" for k in range(count)]
    for n in names:
        d.create_instance(t, n)
    return t, names


def test_acknowledged_writes_survive_sigkill_of_every_worker(fresh):
    d = fresh(workers=3, threads=4)
    t, names = account_with_instances(d, "storm", "i", 12)
    history = {n: {"acked": None, "attempted": []} for n in names}
    stop = threading.Event()

    def client(mine):
        k = 0
        while not stop.is_set():
            for n in mine:
                v = value(k)
                history[n]["attempted"].append(v)
                try:
                    r = d.request("POST", f"/api/events/websocket/{n}", token=t, body=v)
                except Exception:
                    return
                if r.status != 200:
                    return
                history[n]["acked"] = len(history[n]["attempted"]) - 1
                k += 1

    clients = [threading.Thread(target=client, args=(names[i::4],)) for i in range(4)]
    for c in clients:
        c.start()
    time.sleep(1.5)
    for pid in d.worker_pids():
        os.kill(pid, signal.SIGKILL)
    stop.set()
    for c in clients:
        c.join(30)
    d.wait_for(lambda: not d.worker_pids(), "workers to die")
    d.start_workers()
    acked_total = sum(h["acked"] is not None for h in history.values())
    assert acked_total == len(names), "every instance got at least one acknowledged write"
    for n, h in history.items():
        got = d.request("GET", f"/api/events/getWebsocket/{n}", token=t).json["websocket"]
        allowed = h["attempted"][h["acked"]:]
        assert got in allowed, (n, got, h["attempted"][h["acked"]], len(allowed))
    if not d.shared:
        assert d.cli("log", "verify").returncode == 0


def stop_and_get_log(d):
    d.stop_workers()
    return d.data / "events.log"


@pytest.mark.one_host("damages the data directory's log")
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_torn_or_garbage_tail_is_cut_and_logged(fresh, damage):
    d = fresh(workers=2)
    t = d.account("tail")
    d.create_instance(t, "keep")
    d.request("POST", "/api/events/websocket/keep", token=t, body=value(5))
    log = stop_and_get_log(d)
    size = log.stat().st_size
    with open(log, "r+b") as f:
        if damage == "truncated":
            f.truncate(size - 7)   # the last record (the configuration just saved) loses its end
        else:
            f.seek(0, 2)
            f.write(bytes(random.Random(7).getrandbits(8) for _ in range(333)))
    assert d.cli("log", "verify", check=False).returncode != 0
    d.start_workers()
    r = d.request("GET", "/api/events/getWebsocket/keep", token=t)
    if damage == "truncated":
        assert r.status == 404   # the torn record is gone; the instance before it is there
    else:
        assert r.json["websocket"] == value(5)
    text = d.log.read_text()
    assert "cut a torn tail off the log" in text and f"file={log}" in text and "bytes_dropped=" in text and "offset=" in text
    assert d.request("POST", "/api/events/websocket/keep", token=t, body=value(9)).status == 200
    assert d.cli("log", "verify").stdout.startswith("ok: ")


@pytest.mark.one_host("damages the data directory's log")
def test_damage_in_the_middle_refuses_to_serve_until_repaired(fresh, tmp_path):
    d = fresh(workers=1)
    t = d.account("mid")
    for k in range(5):
        d.create_instance(t, f"m{k}")
    log = stop_and_get_log(d)
    dump = d.cli("log", "dump").stdout.splitlines()
    offset = int(dump[2].split("\t")[0])   # the second instance's record
    with open(log, "r+b") as f:
        f.seek(offset + 12)
        b = f.read(1)
        f.seek(offset + 12)
        f.write(bytes([b[0] ^ 0xFF]))
    serve = subprocess.run([BIN, "serve", "--data-dir", str(d.data), "--listen", f"unix:{tmp_path}/x.sock"],
                           capture_output=True, text=True, timeout=20)
    assert serve.returncode != 0
    line = serve.stderr.strip().splitlines()[-1]
    assert str(log) in line and f"offset {offset}" in line and "ryze-events log repair" in line
    verify = d.cli("log", "verify", check=False)
    assert verify.returncode != 0 and f"offset {offset}" in verify.stderr
    repair = d.cli("log", "repair").stdout
    assert "kept 2 records" in repair and "holding 3 valid-looking records" in repair
    assert list(d.data.glob("events.log.bak-*"))
    assert d.cli("log", "verify").returncode == 0
    d.start_workers()
    assert [i["name"] for i in d.request("GET", "/api/instance/list", token=t).json["instances"]] == ["m0"]


@pytest.mark.one_host("log compact")
def test_compaction_under_concurrent_writes_loses_nothing(fresh):
    d = fresh(workers=3, threads=3)
    t, names = account_with_instances(d, "compact", "c", 8)
    last = {}
    stop = threading.Event()
    errors = []

    def writer(n):
        k = 0
        while not stop.is_set():
            r = d.request("POST", f"/api/events/websocket/{n}", token=t, body=value(k))
            if r.status != 200:
                errors.append(r)
                return
            last[n] = value(k)
            k += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in names]
    for th in threads:
        th.start()
    outputs = []
    for _ in range(4):
        time.sleep(0.3)
        outputs.append(d.cli("log", "compact").stdout)
    stop.set()
    for th in threads:
        th.join(30)
    assert not errors, errors[:3]
    assert all(o.startswith("compacted: ") for o in outputs)
    for _ in range(3):   # every worker, on its next request
        for n in names:
            assert d.request("GET", f"/api/events/getWebsocket/{n}", token=t).json["websocket"] == last[n]
    d.restart_workers()
    for n in names:
        assert d.request("GET", f"/api/events/getWebsocket/{n}", token=t).json["websocket"] == last[n]


@pytest.mark.one_host("the log's compaction")
def test_automatic_compaction(fresh):
    d = fresh(workers=2, args=["--compact-factor", "2", "--rate-limit", "60000"])
    t = d.account("auto")
    d.create_instance(t, "a")
    for k in range(1100):
        assert d.request("POST", "/api/events/websocket/a", token=t, body=value(k)).status == 200
    text = d.log.read_text()
    assert "compacted the log" in text
    assert len(d.cli("log", "dump").stdout.splitlines()) < 1000
    assert d.request("GET", "/api/events/getWebsocket/a", token=t).json["websocket"] == value(1099)


@pytest.mark.one_host("a write the data directory's file refuses (RLIMIT_FSIZE)")
def test_failed_write_changes_nothing_and_the_next_one_succeeds(fresh):
    d = fresh(workers=2, threads=2)
    t = d.account("full")
    d.create_instance(t, "f")
    assert d.request("POST", "/api/events/websocket/f", token=t, body=value(1)).status == 200
    log = d.data / "events.log"
    size = log.stat().st_size
    # The kernel refuses to let the log grow (a file-size limit on the live workers: EFBIG,
    # the same path as ENOSPC or an I/O error).
    for pid in d.worker_pids():
        subprocess.run(["prlimit", f"--pid={pid}", f"--fsize={size}:"], check=True)
    for _ in range(3):
        r = d.request("POST", "/api/events/websocket/f", token=t, body=value(2))
        assert r.status == 500
        assert r.json == {"success": False, "error": {"message": "Failed to save websocket configuration"}}
    r = d.request("POST", "/api/instance/new", token=t, body={"name": "g"})
    assert r.status == 500
    assert log.stat().st_size == size   # nothing partial left behind
    for _ in range(4):   # memory unchanged, in every worker
        assert d.request("GET", "/api/events/getWebsocket/f", token=t).json["websocket"] == value(1)
    assert d.request("GET", "/api/instance/list?instanceName=g", token=t).status == 404
    for pid in d.worker_pids():
        subprocess.run(["prlimit", f"--pid={pid}", "--fsize=unlimited:"], check=True)
    assert d.request("POST", "/api/events/websocket/f", token=t, body=value(3)).status == 200
    assert d.request("GET", "/api/events/getWebsocket/f", token=t).json["websocket"] == value(3)
    assert d.cli("log", "verify").returncode == 0
    assert len(d.worker_pids()) == 2


def test_files_and_directory_modes(deployment, acct):
    deployment.create_instance(acct, "modes")
    assert stat.S_IMODE(os.stat(deployment.data).st_mode) == 0o700
    # With --store the state and the buckets are elsewhere; the host's change counter is here.
    expected = ["store.seq"] if deployment.shared else ["events.log", "events.lock", "events.seq", "ratelimit.table"]
    for f in set(expected) | set(os.listdir(deployment.data)):
        assert stat.S_IMODE(os.stat(deployment.data / f).st_mode) == 0o600, f


def test_refuses_a_data_directory_it_cannot_lock():
    import tempfile
    top = tempfile.mkdtemp(prefix="ryze-lock-")
    try:
        os.chmod(top, 0o755)
        data = os.path.join(top, "data")   # made 0700 by root: another user may not use it
        subprocess.run([BIN, "account", "create", "--name", "x", "--data-dir", data], check=True, capture_output=True)
        r = subprocess.run(["runuser", "-u", "nobody", "--", BIN, "serve", "--data-dir", data, "--listen", f"unix:{top}/n.sock"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode != 0
        last = r.stderr.strip().splitlines()[-1]
        assert "cannot lock data directory" in last and data in last and "Permission denied" in last
    finally:
        shutil.rmtree(top)
