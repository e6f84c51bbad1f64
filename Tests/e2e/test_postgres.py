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

# Its own PostgreSQL and two hosts on it: the several-hosts test already, run once.
pytestmark = pytest.mark.one_host("sets up its own PostgreSQL and two hosts")

UNAVAILABLE = {"success": False, "error": {"message": "Service temporarily unavailable"}}


@pytest.fixture(scope="module")
def pg():
    s = PgServer().start()
    yield s
    s.stop()


def start_host(url, key, workers=2, args=()):
    # Every host holds the same deployment key: with --store none is made on first use.
    return Deployment(workers=workers, threads=4, args=FAST + ["--store", url, *args], secret_key=key).start()


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
    print(f"instance created on A served by B after {took:.3f}s")
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
    until(lambda: b.request("GET", "/api/instance/list", token=itoken).status == 401, 1.0 - (time.monotonic() - t0))
    print(f"account disabled (CLI on A) refused by B, with its instance's token, after {time.monotonic() - t0:.3f}s")
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
    # Nothing listens there: refused at once, with the reason on one line.
    t = time.monotonic()
    r = a.cli("account", "list", "--store", "postgresql://postgres@127.0.0.1:9/x", check=False)
    assert r.returncode != 0 and "store unavailable" in r.stderr and time.monotonic() - t < 2.0, r.stderr


class Load:
    """Threads sending GET /api/instance/list in a loop, recording (sent at, seconds, status, json)."""

    def __init__(self, d, token, threads=4):
        self.d, self.token, self.results = d, token, []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            r = self.d.request("GET", "/api/instance/list", token=self.token)
            self.results.append((t, time.monotonic() - t, r.status, r.json))

    def first(self, status, after):
        """Seconds from `after` to the first answer with `status` to a request sent after it."""
        ends = [t + took for t, took, s, _ in self.results if s == status and t >= after]
        return min(ends) - after if ends else None

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return self.results


def outage(breaks, repairs):
    """One host under load on a PostgreSQL of its own; `breaks(server)` cuts it off, `repairs`
    brings it back. Returns (seconds to the first 503, seconds back to 200, slowest answer)."""
    own = PgServer().start()
    try:
        url = own.database()
        d = start_host(url, os.urandom(32))
        try:
            token = account(d, url, "acme")
            until(lambda: d.request("GET", "/api/instance/list", token=token).status == 200, 1.5)
            d.create_instance(token, "shop")
            load = Load(d, token)
            time.sleep(0.5)
            down_at = time.monotonic()
            breaks(own)
            until(lambda: load.first(503, down_at) is not None, 2.5)
            # A write while it is down is refused the same way, never acknowledged.
            r = d.request("POST", "/api/instance/new", token=token, body={"name": "during"})
            assert r.status == 503 and r.json == UNAVAILABLE, r
            time.sleep(1.0)
            up_at = time.monotonic()
            repairs(own)
            until(lambda: load.first(200, up_at) is not None, 5.0)
            results = load.finish()
            first_503, back = load.first(503, down_at), load.first(200, up_at)
            slowest = max(took for _, took, _, _ in results)
            assert {s for _, _, s, _ in results} <= {200, 503}
            assert all(j == UNAVAILABLE for _, _, s, j in results if s == 503)
            print(f"first 503 {first_503:.3f}s after the break, first 200 {back:.3f}s after the repair, "
                  f"slowest answer {slowest:.3f}s, {len(results)} requests")
            # Every worker answers again, reads and writes: the one that answered the first 200 may
            # not be the one a request reaches, whose follower may still be reconnecting (a moment
            # later under load; seen in CI for a read right after a write went through). A 503 is
            # the contract's answer meanwhile and never an acknowledgement, so asking again is safe.
            def names():
                r = d.request("GET", "/api/instance/list", token=token)
                assert r.status in (200, 503), r
                if r.status == 503:
                    assert r.json == UNAVAILABLE, r
                    return None
                return sorted(i["name"] for i in r.json["instances"])
            listed = []
            until(lambda: listed.append(names()) or listed[-1] is not None, 3.0)
            assert listed[-1] == ["shop"]
            until(lambda: d.request("POST", "/api/instance/new", token=token, body={"name": "after"}).status != 503, 3.0)
            until(lambda: listed.append(names()) or listed[-1] is not None, 3.0)
            assert listed[-1] == ["after", "shop"], listed
            return first_503, back, slowest
        finally:
            d.close()
    finally:
        own.stop()


def test_postgresql_stopped_under_load_answers_503_within_two_seconds_then_resumes():
    first_503, back, slowest = outage(PgServer.pause, PgServer.resume)
    assert first_503 < 2.0 and slowest < 2.0


def test_postgresql_gone_silent_under_load_answers_503_within_two_seconds_then_resumes():
    # Frozen, not stopped: connections stay open and nothing answers, so only deadlines help.
    first_503, back, slowest = outage(PgServer.freeze, PgServer.thaw)
    assert first_503 < 2.0 and slowest < 2.0


def test_store_migrate_copies_a_one_host_deployment(pg):
    one = Deployment(workers=1, threads=2, args=FAST).start()
    try:
        token = one.account("acme", quota=7)
        itoken = one.create_instance(token, "shop")
        r = one.request("POST", "/api/events/webhook/shop", token=token,
                        body={"label": "crm", "enabled": True, "url": "https://crm.example/in", "authorization": "Token s3cret"})
        assert r.status == 200, r
        hook = one.request("GET", "/api/events/getWebhook/shop?label=crm", token=token).json["webhook"]
        one.cli("publisher", "create", "--name", "producer")
        one.stop_workers()
        url = pg.database()
        r = one.cli("store", "migrate", "--store", url)
        assert "1 accounts, 1 instances, 1 publishers" in r.stdout, r.stdout
        again = one.cli("store", "migrate", "--store", url, check=False)
        assert again.returncode != 0 and "already holds" in again.stderr
        host = start_host(url, (one.data / "secret.key").read_bytes())
        try:
            until(lambda: host.request("GET", "/api/instance/list", token=itoken).status == 200, 1.5)
            assert host.request("GET", "/api/events/getWebhook/shop?label=crm", token=token).json["webhook"] == hook
            assert "acme\tactive\t1\t7" in cli(host, url, "account", "list").stdout
        finally:
            host.close()
    finally:
        one.close()


def test_an_event_published_on_one_host_is_delivered_with_a_webhook_saved_on_the_other(hosts):
    # The queue is PostgreSQL's; B's deliverer reads the webhook (and its sealed secret) saved
    # through A from there too.
    from test_delivery import Deliverer, Receiver, publish, save_hook, verified
    url, a, b = hosts
    receiver = Receiver()
    dl = Deliverer(b, "--allow-private-targets", "--store", url).start()
    try:
        token = account(a, url, "acme")
        until(lambda: a.request("GET", "/api/instance/list", token=token).status == 200, 1.5)
        a.create_instance(token, "shop")
        secret = save_hook(a, token, "shop", receiver.url("/shop"), authorization="Bearer r1")
        ptoken = cli(a, url, "publisher", "create", "--name", "producer").stdout.strip()
        until(lambda: b.request("POST", "/api/events/publish/shop", token=ptoken,
                                body={"event": "message.exchange", "data": {}}).status == 202, 1.5)
        event = publish(b, ptoken, "shop", {"n": 2}, id="evt-pg-1")
        assert event["webhooks"] == 1
        receiver.wait_for(lambda: any(h["headers"]["webhook-id"] == "evt-pg-1" for h in receiver.hits("/shop")), "the delivery")
        hit = [h for h in receiver.hits("/shop") if h["headers"]["webhook-id"] == "evt-pg-1"][0]
        assert verified(secret, hit)["data"] == {"n": 2}
        assert hit["headers"]["authorization"] == "Bearer r1"
    finally:
        dl.stop()
        receiver.close()
