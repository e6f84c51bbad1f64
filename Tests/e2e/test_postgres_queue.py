"""SPEC §7 with `--store postgresql://`: the delivery queue and the dead letters live in PostgreSQL.
Two hosts (each its own nginx, spawn-fcgi workers and data directory) and two deliverers on one
throwaway PostgreSQL (pg_server.py), delivering to a real receiver that records overlapping
attempts at one delivery."""
import json
import os
import threading
import time
import urllib.request

import pytest

from conftest import FAST
from harness import Deployment
from pg_server import PgServer
from test_delivery import Deliverer, Receiver, publish, save_hook, verified
from test_postgres import account, cli, pg, start_host, until   # noqa: F401 (pg: the fixture)

FAST_RETRIES = ["--retry-schedule", "1s,1s,1s", "--webhook-timeout", "2"]
# A lease of 2 + 12 s: a killed deliverer's deliveries are taken up by the other within about 14 s.
SHARED = ["--allow-private-targets", "--lease-margin", "12", *FAST_RETRIES]


def host(url, key):
    return start_host(url, key, args=["--status-path", "/status"])


@pytest.fixture
def two_hosts(pg):
    url = pg.database()
    key = os.urandom(32)
    made = [host(url, key), host(url, key)]
    yield url, made[0], made[1]
    for d in made:
        d.close()


def status(d):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.port}/status", timeout=5) as r:
        return json.loads(r.read())["delivery"]


def dead_list(d, url, *args):
    lines = cli(d, url, "webhook", "dead", "list", *args).stdout.splitlines()
    return [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]


def setup(url, a, b, receiver, path):
    token = account(a, url, "acme")
    until(lambda: b.request("GET", "/api/instance/list", token=token).status == 200, 1.5)
    a.create_instance(token, "shop")
    secret = save_hook(a, token, "shop", receiver.url(path))
    ptoken = cli(a, url, "publisher", "create", "--name", "producer").stdout.strip()
    until(lambda: b.request("GET", "/api/events/getWebhook/shop", token=token).status == 200, 1.5)
    return token, secret, ptoken


def overlap_story(receiver, *deliverers):
    """What the receiver and the deliverers' logs say about the deliveries that overlapped."""
    ids = {event_id for _, event_id in receiver.overlaps}
    seen = [(h["at"], h["headers"]["webhook-id"], h["headers"].get("webhook-timestamp")) for h in receiver.requests
            if h["headers"].get("webhook-id") in ids]
    logs = [f"{i}: {line}" for i, d in enumerate(deliverers) for line in d.log_lines() if any(e in line for e in ids)]
    return seen, logs


def test_two_deliverers_share_the_queue_and_one_killed_loses_nothing(two_hosts):
    url, a, b = two_hosts
    receiver = Receiver(delay=0.02)
    # Every tenth event fails its first attempt: retries go back to the shared queue too.
    receiver.script("/q1", *([500] + [200] * 9) * 20)
    da = Deliverer(a, "--store", url, *SHARED).start()
    db = Deliverer(b, "--store", url, *SHARED).start()
    try:
        _, secret, ptoken = setup(url, a, b, receiver, "/q1")
        ids, lock = [], threading.Lock()

        def storm(d, n):
            for _ in range(n):
                e = publish(d, ptoken, "shop")
                assert e["webhooks"] == 1
                with lock:
                    ids.append(e["id"])

        threads = [threading.Thread(target=storm, args=((a, b)[i % 2], 100)) for i in range(4)]
        started = time.monotonic()
        for t in threads:
            t.start()
        until(lambda: len(receiver.hits("/q1")) >= 60, 30)
        da.kill()   # SIGKILL, mid-run: its leased deliveries wait for their lease to run out
        killed_at = time.monotonic()
        for t in threads:
            t.join()
        assert len(set(ids)) == 400
        until(lambda: receiver.ids("/q1") >= set(ids), 60)
        took = time.monotonic() - started
        hits = receiver.hits("/q1")
        for h in hits:
            verified(secret, h)
        assert receiver.overlaps == [], (receiver.overlaps, overlap_story(receiver, da, db))
        by_a = sum(1 for line in da.log_lines() if "outcome=delivered" in line)
        by_b = sum(1 for line in db.log_lines() if "outcome=delivered" in line)
        assert by_a > 0 and by_b > 0, (by_a, by_b)
        print(f"400 events, {len(hits)} requests ({len(hits) - 400 - 20} beyond the 20 scripted failures), "
              f"delivered by A before its kill {by_a}, by B {by_b}; all delivered {took:.1f}s after the first publish, "
              f"{time.monotonic() - killed_at:.1f}s after the kill")
        # A's last attempts may all have reached the receiver unrecorded: their rows wait for its
        # leases to run out (2 + 12 s after the kill) before B sends and records them again.
        until(lambda: status(b)["queued"] == 0 and status(b)["retrying"] == 0 and status(b)["inFlight"] == 0, 30)
        # Each delivery left the queue once (what A sent but had not recorded, B sent again and recorded).
        s = status(a)
        assert (s["dead"], s["delivered"], s["inFlight"]) == (0, 400, 0), s
    finally:
        if db.proc:
            db.stop()
        receiver.close()


def test_dead_letters_are_listed_retried_and_purged_with_store(two_hosts):
    url, a, b = two_hosts
    receiver = Receiver(delay=0)
    receiver.script("/q2", *[500] * 8)
    db = Deliverer(b, "--store", url, *SHARED).start()
    try:
        _, _, ptoken = setup(url, a, b, receiver, "/q2")
        first = publish(a, ptoken, "shop", id="evt-dead-1")
        second = publish(b, ptoken, "shop", id="evt-dead-2")
        until(lambda: len(dead_list(a, url)) == 2, 30)
        rows = {r["EVENT ID"]: r for r in dead_list(a, url, "--instance", "shop")}
        assert set(rows) == {first["id"], second["id"]}
        assert all(r["ATTEMPTS"] == "4" and r["LAST ERROR"] == "HTTP 500" for r in rows.values()), rows
        assert dead_list(b, url, "--instance", "other") == []
        assert status(a)["dead"] == 2
        # Retried from the other host's CLI, delivered by B's deliverer now that the receiver answers 200.
        out = cli(b, url, "webhook", "dead", "retry", rows["evt-dead-1"]["ID"]).stdout
        assert "1 dead letter back in the queue" in out
        until(lambda: "evt-dead-1" in {h["headers"]["webhook-id"] for h in receiver.hits("/q2")[8:]}, 10)
        until(lambda: [r["EVENT ID"] for r in dead_list(a, url)] == ["evt-dead-2"], 5)
        r = cli(a, url, "webhook", "dead", "retry", "999999", check=False)
        assert r.returncode != 0 and "not in the dead-letter queue: 999999" in r.stderr
        assert "1 dead letter purged" in cli(a, url, "webhook", "dead", "purge").stdout
        assert dead_list(a, url) == []
    finally:
        db.stop()
        receiver.close()


def test_store_migrate_copies_the_queue(pg):
    receiver = Receiver(delay=0)
    one = Deployment(workers=1, threads=2, args=FAST).start()
    try:
        token = one.account("acme")
        one.create_instance(token, "shop")
        save_hook(one, token, "shop", receiver.url("/q3"))
        ptoken = one.cli("publisher", "create", "--name", "producer").stdout.strip()
        ids = {publish(one, ptoken, "shop")["id"] for _ in range(5)}   # no deliverer: they stay queued
        one.stop_workers()
        url = pg.database()
        r = one.cli("store", "migrate", "--store", url)
        assert "copied the delivery queue: 5 pending deliveries, 0 dead letters" in r.stdout, r.stdout
        # Run again, the state's copy refuses first (the queue is not copied twice); --queue-only
        # copies the queue alone (here into another database, as after a failed queue copy).
        again = one.cli("store", "migrate", "--store", url, check=False)
        assert again.returncode != 0 and "delivery queue" not in again.stdout, (again.stdout, again.stderr)
        alone = one.cli("store", "migrate", "--queue-only", "--store", pg.database())
        assert alone.stdout.strip() == "copied the delivery queue: 5 pending deliveries, 0 dead letters", alone.stdout
        h = host(url, (one.data / "secret.key").read_bytes())
        dl = Deliverer(h, "--store", url, *SHARED).start()
        try:
            until(lambda: receiver.ids("/q3") == ids, 15)
        finally:
            dl.stop()
            h.close()
    finally:
        one.close()
        receiver.close()


def test_the_deliverer_and_the_publish_path_survive_a_postgresql_restart():
    own = PgServer().start()
    receiver = Receiver(delay=0)
    try:
        url = own.database()
        h = host(url, os.urandom(32))
        dl = Deliverer(h, "--store", url, *SHARED).start()
        try:
            token = account(h, url, "acme")
            until(lambda: h.request("GET", "/api/instance/list", token=token).status == 200, 1.5)
            h.create_instance(token, "shop")
            save_hook(h, token, "shop", receiver.url("/q4"))
            ptoken = cli(h, url, "publisher", "create", "--name", "producer").stdout.strip()
            until(lambda: h.request("POST", "/api/events/publish/shop", token=ptoken,
                                    body={"event": "message.exchange", "data": {}, "id": "before"}).status == 202, 1.5)
            until(lambda: "before" in receiver.ids("/q4"), 10)
            own.pause()
            t = time.monotonic()
            r = h.request("POST", "/api/events/publish/shop", token=ptoken, body={"event": "message.exchange", "data": {}, "id": "during"})
            assert r.status == 503 and r.json == {"success": False, "error": {"message": "Service temporarily unavailable"}}, r
            assert time.monotonic() - t < 2.0
            time.sleep(2)
            own.resume()
            until(lambda: h.request("POST", "/api/events/publish/shop", token=ptoken,
                                    body={"event": "message.exchange", "data": {}, "id": "after"}).status == 202, 10)
            until(lambda: "after" in receiver.ids("/q4"), 15)
            assert dl.proc.poll() is None, "the deliverer survived the restart"
            assert "during" not in receiver.ids("/q4")
        finally:
            dl.stop()
            h.close()
    finally:
        receiver.close()
        own.stop()


def test_a_stuck_endpoint_does_not_hold_up_a_healthy_one_on_the_shared_queue(two_hosts):
    import socket
    url, a, b = two_hosts
    # Accepts and never answers: every attempt to it runs into --webhook-timeout (2 s).
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(512)
    held, stop = [], threading.Event()

    def accept():
        stuck.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(stuck.accept()[0])
            except OSError:
                pass
    threading.Thread(target=accept, daemon=True).start()
    receiver = Receiver(delay=0)
    da = Deliverer(a, "--store", url, *SHARED, "--per-endpoint", "2").start()
    db = Deliverer(b, "--store", url, *SHARED, "--per-endpoint", "2").start()
    try:
        token, _, ptoken = setup(url, a, b, receiver, "/q5")
        save_hook(a, token, "shop", f"http://127.0.0.1:{stuck.getsockname()[1]}/stuck", label="stuck")
        until(lambda: publish(b, ptoken, "shop")["webhooks"] == 2, 2)
        t = time.monotonic()
        ids = {publish((a, b)[i % 2], ptoken, "shop")["id"] for i in range(100)}
        # 100 deliveries to the stuck endpoint would take 100 x 2 s / (2 per endpoint x 2
        # deliverers) = 50 s in line; the healthy ones are not behind them.
        until(lambda: receiver.ids("/q5") >= ids, 10)
        print(f"100 healthy deliveries beside 100 to a stuck endpoint: all delivered after {time.monotonic() - t:.2f}s")
        assert receiver.overlaps == []
    finally:
        da.stop()
        db.stop()
        stop.set()
        for c in held:
            c.close()
        stuck.close()
        receiver.close()
