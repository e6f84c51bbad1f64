"""SPEC §7 with `--store postgresql://`: two hosts (each its own nginx, spawn-fcgi workers and data
directory) on one throwaway PostgreSQL (pg_server.py)."""
import concurrent.futures
import os
import threading
import time

import pytest

from conftest import FAST
from harness import BIN, Deployment
from pg_server import PgServer

UNAVAILABLE = {"success": False, "error": {"message": "Service temporarily unavailable"}}


@pytest.fixture(scope="module")
def pg():
    s = PgServer().start()
    yield s
    s.stop()


def start_host(url, key, workers=2):
    d = Deployment(workers=workers, threads=4, args=FAST + ["--store", url])
    d.data.mkdir(parents=True, exist_ok=True)
    # Every host holds the same deployment key: with --store none is made on first use.
    fd = os.open(d.data / "secret.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, key)
    os.close(fd)
    return d.start()


@pytest.fixture
def hosts(pg):
    url = pg.database()
    key = os.urandom(32)
    made = [start_host(url, key), start_host(url, key)]
    yield url, made[0], made[1]
    for d in made:
        d.close()


def cli(d, url, *args, check=True):
    return d.cli(*args, "--store", url, check=check)


def account(d, url, name, quota=None):
    args = ["account", "create", "--name", name] + (["--instance-quota", str(quota)] if quota is not None else [])
    out = cli(d, url, *args).stdout
    assert out.count("\n") == 1, out
    return out.strip()


def until(cond, timeout):
    """Seconds it took cond() to hold, or fails after timeout."""
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - start


def test_an_instance_created_on_one_host_is_served_by_the_other_within_a_second(hosts):
    url, a, b = hosts
    token = account(a, url, "acme")
    until(lambda: a.request("GET", "/api/instance/list", token=token).status == 200, 1.5)
    itoken = a.create_instance(token, "shop")
    took = until(lambda: b.request("GET", "/api/instance/list", token=itoken).status == 200, 1.0)
    assert took < 1.0
    r = b.request("GET", "/api/instance/list", token=token)
    assert [i["name"] for i in r.json["instances"]] == ["shop"]
    # A configuration written on B is read on A.
    r = b.request("POST", "/api/events/websocket/shop", token=itoken, body={"enabled": True, "events": ["call.update"]})
    assert r.status == 200, r
    until(lambda: (a.request("GET", "/api/events/getWebsocket/shop", token=itoken).json.get("websocket") or {}).get("events") == ["call.update"], 1.0)


def test_a_disabled_account_is_refused_by_the_other_host_within_a_second(hosts):
    url, a, b = hosts
    token = account(a, url, "acme")
    until(lambda: b.request("GET", "/api/instance/list", token=token).status == 200, 1.5)
    itoken = b.create_instance(token, "shop")
    until(lambda: a.request("GET", "/api/instance/list", token=itoken).status == 200, 1.0)
    assert "disabled" in cli(a, url, "account", "disable", "acme").stdout
    t0 = time.monotonic()
    until(lambda: b.request("GET", "/api/instance/list", token=token).status == 401, 1.0)
    until(lambda: b.request("GET", "/api/instance/list", token=itoken).status == 401, 1.0 - (time.monotonic() - t0) + 0.05)
    assert a.request("GET", "/api/instance/list", token=token).json == {"success": False, "error": {"message": "Invalid token"}}


def test_the_quota_holds_when_both_hosts_create_at_once(hosts):
    url, a, b = hosts
    token = account(a, url, "acme", quota=3)
    until(lambda: b.request("GET", "/api/instance/list", token=token).status == 200, 1.5)
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda i: (a, b)[i % 2].request("POST", "/api/instance/new", token=token,
                                                                   body={"name": f"i{i}"}).status, range(12)))
    assert sorted(statuses) == [201] * 3 + [403] * 9, statuses
    until(lambda: len(a.request("GET", "/api/instance/list", token=token).json["instances"]) == 3, 1.0)


def test_cli_subcommands_work_or_refuse_with_store(hosts):
    url, a, _ = hosts
    account(a, url, "acme")
    out = cli(a, url, "account", "list").stdout
    assert "acme\tactive" in out
    ptoken = cli(a, url, "publisher", "create", "--name", "producer").stdout.strip()
    assert ptoken and "producer\tactive" in cli(a, url, "publisher", "list").stdout
    r = cli(a, url, "log", "verify", check=False)
    assert r.returncode != 0 and "--store" in r.stderr and r.stderr.count("\n") == 1
    r = a.cli("account", "create", "--name", "x", "--store", "mysql://nope", check=False)
    assert r.returncode != 0 and "postgresql://" in r.stderr


def test_postgresql_stopped_under_load_answers_503_within_two_seconds_then_resumes(pg):
    # A server of its own: this test stops it.
    own = PgServer().start()
    try:
        url = own.database()
        d = start_host(url, os.urandom(32))
        try:
            token = account(d, url, "acme")
            until(lambda: d.request("GET", "/api/instance/list", token=token).status == 200, 1.5)
            d.create_instance(token, "shop")

            stop = threading.Event()
            results = []   # (sent at, seconds taken, status, json)

            def load():
                while not stop.is_set():
                    t = time.monotonic()
                    r = d.request("GET", "/api/instance/list", token=token)
                    results.append((t, time.monotonic() - t, r.status, r.json))
            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            down_at = time.monotonic()
            own.pause()
            first_503 = until(lambda: any(s == 503 and t >= down_at for t, _, s, _ in results), 2.0)
            # A write while it is down is refused the same way, never acknowledged.
            r = d.request("POST", "/api/instance/new", token=token, body={"name": "during"})
            assert r.status == 503 and r.json == UNAVAILABLE
            time.sleep(1.0)
            up_at = time.monotonic()
            own.resume()
            back = until(lambda: any(s == 200 and t >= up_at for t, _, s, _ in results), 5.0)
            stop.set()
            for t in threads:
                t.join()
            slowest = max(took for _, took, _, _ in results)
            statuses = {s for _, _, s, _ in results}
            assert statuses <= {200, 503}, statuses
            assert all(j == UNAVAILABLE for _, _, s, j in results if s == 503)
            assert slowest < 2.0, slowest
            assert first_503 < 2.0
            print(f"first 503 after {first_503:.3f}s, back {back:.3f}s after restart, slowest answer {slowest:.3f}s, "
                  f"{len(results)} requests")
            # Nothing written while it was down.
            names = [i["name"] for i in d.request("GET", "/api/instance/list", token=token).json["instances"]]
            assert names == ["shop"]
            assert d.request("POST", "/api/instance/new", token=token, body={"name": "after"}).status == 201
        finally:
            d.close()
    finally:
        own.stop()
