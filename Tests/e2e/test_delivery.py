"""SPEC §6.3: webhook delivery end to end. Events published through nginx and the workers are
delivered by a real `ryze-events deliver` to real receivers (Python HTTP servers on 127.0.0.1, so
the deliverer runs with --allow-private-targets but where the address rule is the subject), and
every delivery's signature is verified with the Standard Webhooks library."""
import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook

from harness import BIN

FAST_RETRIES = ["--retry-schedule", "1s,1s,1s", "--webhook-timeout", "2"]   # four attempts, about 3 s


class Receiver:
    """A webhook receiver: keeps every request; answers each path as scripted (status, headers,
    delay), then 200 after `delay` seconds; records in `overlaps` every attempt that began while
    another attempt at the same delivery (path and webhook-id) was still being answered."""

    def __init__(self, delay=0):
        self.lock = threading.Lock()
        self.requests, self.overlaps, self.plans = [], [], {}
        self.open = {}   # (path, webhook-id) -> attempts being answered; guarded by lock
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                key = (self.path, headers.get("webhook-id"))
                with receiver.lock:
                    if receiver.open.get(key):
                        receiver.overlaps.append(key)
                    receiver.open[key] = receiver.open.get(key, 0) + 1
                    receiver.requests.append({"path": self.path, "headers": headers, "body": body, "at": time.time()})
                    plan = receiver.plans.get(self.path)
                    status, answer_headers, answer_delay = plan.pop(0) if plan else (200, {}, delay)
                try:
                    time.sleep(answer_delay)
                    self.send_response(status)
                    for k, v in answer_headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass   # the deliverer gave up waiting
                finally:
                    with receiver.lock:
                        receiver.open[key] -= 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def script(self, path, *answers):
        """Answers for the next requests to `path`: (status, headers, delay) or a status."""
        with self.lock:
            self.plans[path] = [a if isinstance(a, tuple) else (a, {}, 0) for a in answers]

    def hits(self, path=None, prefix=None):
        with self.lock:
            return [r for r in self.requests
                    if (path is None or r["path"] == path) and (prefix is None or r["path"].startswith(prefix))]

    def ids(self, path):
        return {h["headers"]["webhook-id"] for h in self.hits(path)}

    def wait_for(self, cond, what, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; got {[r['path'] for r in self.requests]}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Deliverer:
    """`ryze-events deliver` on a deployment's data directory, logging to a file of its own."""

    def __init__(self, d, *args):
        self.d = d
        self.args = list(args)
        self.log = d.dir / "deliver.log"
        self.proc = None

    def start(self, *args, env=None):
        if args:
            self.args = list(args)
        self.proc = subprocess.Popen([BIN, "deliver", "--data-dir", str(self.d.data), *self.d.store_args, "--log-file", str(self.log), *self.args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        return self

    def stop(self):
        """SIGTERM: a graceful stop, exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(15)
        assert rc == 0, (rc, self.proc.stderr.read())
        self.proc = None

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def log_lines(self):
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def publisher(deployment):
    return deployment.cli("publisher", "create", "--name", "deliver-tests").stdout.strip()


@pytest.fixture(scope="module")
def deliverer(deployment):
    dl = Deliverer(deployment, "--allow-private-targets", *FAST_RETRIES).start()
    yield dl
    if dl.proc:
        dl.stop()


def save_hook(d, token, instance, url, label="default", **fields):
    r = d.request("POST", f"/api/events/webhook/{instance}", token=token, body={"label": label, "enabled": True, "url": url, **fields})
    assert r.status == 200, r
    return r.json["webhook"]["signingSecret"]


def publish(d, publisher, instance, data=None, event="message.exchange", id=None):
    body = {"event": event, "data": data if data is not None else {"n": 1}}
    if id:
        body["id"] = id
    r = d.request("POST", f"/api/events/publish/{instance}", token=publisher, body=body)
    assert r.status == 202, r
    return r.json["event"]


def verified(secret, hit):
    """The delivery's JSON, after Standard Webhooks' own check of its signature and timestamp."""
    return Webhook(secret).verify(hit["body"], {k: hit["headers"][k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")})


def dead_list(d, *args):
    lines = d.cli("webhook", "dead", "list", *args).stdout.splitlines()
    assert lines[0].split("\t") == ["ID", "EVENT ID", "ACCOUNT", "INSTANCE", "LABEL", "EVENT", "ATTEMPTS", "DEAD SINCE", "LAST ERROR"]
    return [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]


def test_headers_body_path_and_signature(deployment, acct, receiver, publisher, deliverer):
    deployment.create_instance(acct, "dl1")
    plain = save_hook(deployment, acct, "dl1", receiver.url("/dl1/plain"), label="plain", authorization="Bearer rcv-secret-1")
    by_events = save_hook(deployment, acct, "dl1", receiver.url("/dl1/by"), label="by", byEvents=True, mediaBase64=True)
    data = {"message": {"text": "olá", "media": {"base64": "AAAA", "mimetype": "image/png"}}, "big": 12345678901234567890}
    event = publish(deployment, publisher, "dl1", data)
    assert event["webhooks"] == 2
    receiver.wait_for(lambda: len(receiver.hits(prefix="/dl1/")) == 2, "both deliveries")

    [p] = receiver.hits("/dl1/plain")
    [b] = receiver.hits("/dl1/by/message.exchange")
    for hit, secret in ((p, plain), (b, by_events)):
        h = hit["headers"]
        assert h["content-type"] == "application/json"
        assert h["user-agent"].startswith("ryze-events/")
        assert h["webhook-id"] == event["id"]
        assert abs(int(h["webhook-timestamp"]) - time.time()) < 30
        body = verified(secret, hit)
        assert body["event"] == "message.exchange"
        assert body["instanceData"] == {"baseUrl": "", "instance": "dl1"}
        assert body["data"]["big"] == 12345678901234567890   # the producer's number, unchanged
        assert body["data"]["message"]["text"] == "olá"
    assert p["headers"]["authorization"] == "Bearer rcv-secret-1"
    assert "authorization" not in b["headers"]
    # mediaBase64 false strips the base64; true keeps it.
    assert json.loads(p["body"])["data"]["message"]["media"] == {"mimetype": "image/png"}
    assert json.loads(b["body"])["data"]["message"]["media"] == {"base64": "AAAA", "mimetype": "image/png"}
    # Another label's secret does not verify this delivery.
    with pytest.raises(Exception):
        verified(by_events, p)


def test_retries_keep_the_id_and_honour_retry_after(deployment, acct, receiver, publisher, deliverer):
    deployment.create_instance(acct, "dl2")
    secret = save_hook(deployment, acct, "dl2", receiver.url("/dl2"))
    receiver.script("/dl2", (503, {"Retry-After": "2"}, 0), 500, 200)
    event = publish(deployment, publisher, "dl2", id="producer-id:42")
    receiver.wait_for(lambda: len(receiver.hits("/dl2")) == 3, "three attempts", timeout=10)
    hits = receiver.hits("/dl2")
    assert {h["headers"]["webhook-id"] for h in hits} == {event["id"]} == {"producer-id:42"}
    for h in hits:
        verified(secret, h)
    # A 503's Retry-After of 2 s beats the 1 s schedule; the 500 after it waits the schedule's 1 s +-10 %.
    assert hits[1]["at"] - hits[0]["at"] >= 1.9
    assert 0.85 <= hits[2]["at"] - hits[1]["at"] < 1.9
    time.sleep(1.3)
    assert len(receiver.hits("/dl2")) == 3, "delivered once answered 200"


def test_dead_letters_are_listed_retried_and_purged(deployment, acct, receiver, publisher, deliverer):
    deployment.create_instance(acct, "dl3")
    secret = save_hook(deployment, acct, "dl3", receiver.url("/dl3"))
    deployment.create_instance(acct, "dl3r")
    save_hook(deployment, acct, "dl3r", receiver.url("/dl3r"))
    receiver.script("/dl3", *[500] * 8)
    receiver.script("/dl3r", *[(302, {"Location": receiver.url("/dl3r-elsewhere")}, 0)] * 4)
    first = publish(deployment, publisher, "dl3")
    second = publish(deployment, publisher, "dl3")
    publish(deployment, publisher, "dl3r")
    receiver.wait_for(lambda: len(dead_list(deployment, "--instance", "dl3")) == 2 and dead_list(deployment, "--instance", "dl3r"),
                      "three dead letters", timeout=12)
    assert len(receiver.hits("/dl3")) == 8, "four attempts each"
    assert not receiver.hits("/dl3r-elsewhere"), "redirects are not followed"
    [redirected] = dead_list(deployment, "--instance", "dl3r")
    assert dead_list(deployment, "--instance", f"{redirected['ACCOUNT']}.dl3r") == [redirected]
    assert dead_list(deployment, "--instance", "nobody.dl3r") == []
    assert (redirected["ATTEMPTS"], redirected["LAST ERROR"]) == ("4", "HTTP 302 (redirects are not followed)")

    dead = {row["EVENT ID"]: row for row in dead_list(deployment, "--instance", "dl3")}
    row = dead[first["id"]]
    assert (row["INSTANCE"], row["LABEL"], row["EVENT"], row["ATTEMPTS"], row["LAST ERROR"]) == ("dl3", "default", "message.exchange", "4", "HTTP 500")
    assert row["DEAD SINCE"].endswith("Z")

    # Retry one by id: back in the queue with a fresh schedule, delivered now that the receiver answers.
    r = deployment.cli("webhook", "dead", "retry", row["ID"])
    assert r.stdout.strip() == "1 dead letter back in the queue"
    receiver.wait_for(lambda: len(receiver.hits("/dl3")) == 9, "the retried delivery")
    last = receiver.hits("/dl3")[-1]
    assert last["headers"]["webhook-id"] == first["id"]
    verified(secret, last)
    receiver.wait_for(lambda: first["id"] not in {x["EVENT ID"] for x in dead_list(deployment)}, "the delivery to leave the dead letters")

    # Unknown ids change nothing; purge honours --older-than; --all and ids are exclusive.
    r = deployment.cli("webhook", "dead", "retry", "999999", dead[second["id"]]["ID"], check=False)
    assert r.returncode != 0 and "999999" in r.stderr
    assert deployment.cli("webhook", "dead", "retry", check=False).returncode != 0
    assert deployment.cli("webhook", "dead", "purge", "--older-than", "1h").stdout.strip() == "0 dead letters purged"
    assert deployment.cli("webhook", "dead", "purge").stdout.strip() == "2 dead letters purged"
    assert dead_list(deployment) == []


def test_a_stuck_endpoint_does_not_hold_up_a_healthy_one(deployment, acct, receiver, publisher, deliverer):
    stuck = Receiver()
    try:
        deployment.create_instance(acct, "dl4s")
        save_hook(deployment, acct, "dl4s", stuck.url("/stuck"))
        deployment.create_instance(acct, "dl4h")
        secret = save_hook(deployment, acct, "dl4h", receiver.url("/dl4h"))
        stuck.script("/stuck", *[(200, {}, 6)] * 40)   # never answers within the 2 s timeout
        for _ in range(20):
            publish(deployment, publisher, "dl4s")
        started = time.time()
        ids = [publish(deployment, publisher, "dl4h")["id"] for _ in range(20)]
        receiver.wait_for(lambda: len(receiver.hits("/dl4h")) == 20, "the healthy endpoint's deliveries", timeout=5)
        assert time.time() - started < 3
        assert {h["headers"]["webhook-id"] for h in receiver.hits("/dl4h")} == set(ids)
        for h in receiver.hits("/dl4h"):
            verified(secret, h)
        # At most --per-endpoint (4) attempts in flight to the stuck one at any time.
        assert len(stuck.hits()) <= 4
    finally:
        stuck.close()
    # Deleting its instance drops its waiting deliveries at once (not at their next retry).
    assert deployment.request("DELETE", "/api/instance/delete/dl4s", token=acct).status == 200
    deliverer_log = lambda: "\n".join(deliverer.log_lines())
    receiver.wait_for(lambda: deliverer_log().count("reason=instance deleted") >= 20, "the stuck endpoint's deliveries to be dropped")


def test_disabled_labels_and_deleted_instances_are_dropped_not_sent(deployment, acct, receiver, publisher, deliverer):
    deliverer.stop()   # deliveries wait in the queue while their configuration changes
    try:
        deployment.create_instance(acct, "dl5")
        save_hook(deployment, acct, "dl5", receiver.url("/dl5/on"), label="on", authorization="Bearer never-logged-1")
        save_hook(deployment, acct, "dl5", receiver.url("/dl5/off"), label="off")
        save_hook(deployment, acct, "dl5", receiver.url("/dl5/gone"), label="gone")
        deployment.create_instance(acct, "dl5x")
        save_hook(deployment, acct, "dl5x", receiver.url("/dl5x"))
        assert publish(deployment, publisher, "dl5")["webhooks"] == 3
        publish(deployment, publisher, "dl5x")
        r = deployment.request("POST", "/api/events/webhook/dl5", token=acct, body={"label": "off", "enabled": False})
        assert r.status == 200
        r = deployment.request("DELETE", "/api/events/webhook/dl5", token=acct, body={"label": "gone"})
        assert r.status == 200
        r = deployment.request("DELETE", "/api/instance/delete/dl5x", token=acct)
        assert r.status == 200
    finally:
        deliverer.start()
    receiver.wait_for(lambda: receiver.hits("/dl5/on"), "the enabled label's delivery")
    time.sleep(0.5)
    assert [h["path"] for h in receiver.hits(prefix="/dl5")] == ["/dl5/on"]
    log = "\n".join(deliverer.log_lines())
    for reason in ("label disabled", "label deleted", "instance deleted"):
        assert f"reason={reason}" in log
    assert "never-logged" not in log and "whsec_" not in log and "rcv-secret" not in log
    attempt = next(line for line in deliverer.log_lines() if " attempt " in line and "instance=dl5 " in line)
    for field in ("label=on", "event_id=", "attempt=1", "status=200", "duration_ms=", "outcome=delivered"):
        assert field in attempt


def test_a_label_saved_again_never_gets_the_deliveries_of_its_earlier_life(deployment, acct, receiver, publisher, deliverer):
    """SPEC §4/§6.3: deleting or disabling a label, or deleting its instance, drops its queued
    deliveries. Saving the label again under the same name (or on an instance made again) before
    the deliverer has seen the change makes another label, which must not receive them, nor be
    signed with its new secret for them."""
    deliverer.stop()   # the deliverer sees none of the changes below before they are all made
    try:
        deployment.create_instance(acct, "dl10")
        save_hook(deployment, acct, "dl10", receiver.url("/dl10/first"))                       # default
        save_hook(deployment, acct, "dl10", receiver.url("/dl10/cycle-first"), label="cycle")
        deployment.create_instance(acct, "dl10x")
        save_hook(deployment, acct, "dl10x", receiver.url("/dl10x/first"))
        old = publish(deployment, publisher, "dl10")["id"]
        assert publish(deployment, publisher, "dl10x")
        # default: deleted, then saved again; cycle: disabled, then enabled again; dl10x: deleted
        # with its webhook, then made again with one of the same label.
        assert deployment.request("DELETE", "/api/events/webhook/dl10", token=acct).status == 200
        save_hook(deployment, acct, "dl10", receiver.url("/dl10/second"))
        r = deployment.request("POST", "/api/events/webhook/dl10", token=acct, body={"label": "cycle", "enabled": False})
        assert r.status == 200
        save_hook(deployment, acct, "dl10", receiver.url("/dl10/cycle-second"), label="cycle")
        assert deployment.request("DELETE", "/api/instance/delete/dl10x", token=acct).status == 200
        deployment.create_instance(acct, "dl10x")
        save_hook(deployment, acct, "dl10x", receiver.url("/dl10x/second"))
        new = publish(deployment, publisher, "dl10")["id"]
        assert publish(deployment, publisher, "dl10x")
    finally:
        deliverer.start()
    receiver.wait_for(lambda: len(receiver.hits(prefix="/dl10")) >= 3, "the three new deliveries")
    time.sleep(0.5)
    hits = receiver.hits(prefix="/dl10")
    assert sorted(h["path"] for h in hits) == ["/dl10/cycle-second", "/dl10/second", "/dl10x/second"]
    assert {h["headers"]["webhook-id"] for h in hits if h["path"].startswith("/dl10/")} == {new}
    assert old not in {h["headers"]["webhook-id"] for h in hits}
    assert sum("reason=label deleted or disabled since queued" in line for line in deliverer.log_lines()) == 3


def test_one_deliverer_per_data_directory(deployment, deliverer):
    r = subprocess.run([BIN, "deliver", "--data-dir", str(deployment.data), *deployment.store_args], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "another deliverer is running" in r.stderr and r.stderr.count("\n") <= 2


def test_kill_9_during_a_storm_loses_nothing(deployment, acct, receiver, publisher, deliverer):
    deployment.create_instance(acct, "dl6")
    secret = save_hook(deployment, acct, "dl6", receiver.url("/dl6"))
    receiver.script("/dl6", *[(200, {}, 0.03)] * 400)
    ids = set()
    lock = threading.Lock()

    def storm(n):
        for _ in range(n):
            e = publish(deployment, publisher, "dl6")
            with lock:
                ids.add(e["id"])

    threads = [threading.Thread(target=storm, args=(40,)) for _ in range(4)]
    for t in threads:
        t.start()
    receiver.wait_for(lambda: len(receiver.hits("/dl6")) >= 20, "the storm to be under way")
    deliverer.kill()
    for t in threads:
        t.join()
    deliverer.start()
    receiver.wait_for(lambda: {h["headers"]["webhook-id"] for h in receiver.hits("/dl6")} >= ids, "every event after the restart", timeout=30)
    assert len(ids) == 160
    for h in receiver.hits("/dl6"):
        verified(secret, h)
    assert dead_list(deployment, "--instance", "dl6") == []


def test_private_targets_are_refused_without_the_flag(deployment, acct, receiver, publisher, deliverer):
    deliverer.stop()
    try:
        deliverer.start(*FAST_RETRIES)   # no --allow-private-targets
        deployment.create_instance(acct, "dl7")
        save_hook(deployment, acct, "dl7", receiver.url("/dl7"))
        deployment.create_instance(acct, "dl7b")
        save_hook(deployment, acct, "dl7b", f"http://localhost:{receiver.server.server_port}/dl7b")
        event = publish(deployment, publisher, "dl7")
        publish(deployment, publisher, "dl7b")
        receiver.wait_for(lambda: len([x for x in dead_list(deployment) if x["INSTANCE"] in ("dl7", "dl7b")]) == 2, "two refusals")
        [row] = dead_list(deployment, "--instance", "dl7")
        assert (row["EVENT ID"], row["ATTEMPTS"], row["LAST ERROR"]) == (event["id"], "0", "target address not allowed")
        assert dead_list(deployment, "--instance", "dl7b")[0]["LAST ERROR"] == "target address not allowed"
        assert not receiver.hits(prefix="/dl7")
    finally:
        deliverer.stop()
        deliverer.start("--allow-private-targets", *FAST_RETRIES)
    # With the flag, a retried dead letter goes through.
    deployment.cli("webhook", "dead", "retry", "--all")
    receiver.wait_for(lambda: receiver.hits("/dl7") and receiver.hits("/dl7b"), "the retried deliveries")


def test_proxies_in_the_environment_are_not_used(deployment, acct, receiver, publisher, deliverer):
    """A proxy would resolve and connect to the target itself, around the address the deliverer
    checked (SPEC §6.3): `http_proxy` and `all_proxy` in the deliverer's environment are ignored."""
    proxy = Receiver()   # answers 200 to anything, so a proxied delivery would count as delivered
    deliverer.stop()
    try:
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy", "all_proxy")}
        env.update(http_proxy=f"http://127.0.0.1:{proxy.server.server_port}", all_proxy=f"http://127.0.0.1:{proxy.server.server_port}")
        deliverer.start(env=env)
        deployment.create_instance(acct, "dl9")
        save_hook(deployment, acct, "dl9", receiver.url("/dl9"))
        publish(deployment, publisher, "dl9")
        receiver.wait_for(lambda: receiver.hits("/dl9"), "the delivery, straight to the receiver")
        assert proxy.requests == []
    finally:
        deliverer.stop()
        deliverer.start()
        proxy.close()


def test_status_page_counts_the_queue(fresh, receiver):
    from conftest import FAST
    d = fresh(workers=1, threads=2, args=FAST + ["--status-path", "/status"])
    t = d.account("status")
    pub = d.cli("publisher", "create", "--name", "status").stdout.strip()
    dl = Deliverer(d, "--allow-private-targets", "--retry-schedule", "1s", "--webhook-timeout", "2")   # two attempts
    zero = {"queued": 0, "inFlight": 0, "delivered": 0, "retrying": 0, "dead": 0, "dropped": 0}
    assert d.request("GET", "/status").json["delivery"] == zero
    for name, path in (("st1", "/st-ok"), ("st2", "/st-later"), ("st3", "/st-dead"), ("st4", "/st-drop")):
        d.create_instance(t, name)
        save_hook(d, t, name, receiver.url(path))
    receiver.script("/st-later", (503, {"Retry-After": "3600"}, 0))
    receiver.script("/st-dead", 500, 500)
    for name in ("st1", "st2", "st3", "st4"):
        publish(d, pub, name)
    assert d.request("GET", "/status").json["delivery"] == {**zero, "queued": 4}
    assert d.request("DELETE", "/api/instance/delete/st4", token=t).status == 200
    dl.start()
    try:
        receiver.wait_for(lambda: d.request("GET", "/status").json["delivery"]
                          == {**zero, "delivered": 1, "retrying": 1, "dead": 1, "dropped": 1}, "the counts to settle")
        assert not receiver.hits("/st-drop")
    finally:
        dl.stop()
    text = d.request("GET", "/status?format=prometheus").body.decode()
    pid = d.worker_pids()[0]
    for line in (f'ryze_events_delivery_queued{{pid="{pid}"}} 0', f'ryze_events_delivery_in_flight{{pid="{pid}"}} 0',
                 f'ryze_events_delivery_delivered_total{{pid="{pid}"}} 1', f'ryze_events_delivery_retrying{{pid="{pid}"}} 1',
                 f'ryze_events_delivery_dead{{pid="{pid}"}} 1', f'ryze_events_delivery_dropped_total{{pid="{pid}"}} 1',
                 "# TYPE ryze_events_delivery_delivered_total counter", "# TYPE ryze_events_delivery_retrying gauge"):
        assert line in text, line


def test_the_deliverer_unit_verifies(tmp_path):
    import shutil
    from harness import ROOT
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    unit = (ROOT / "deploy" / "ryze-events-deliver.service").read_text().replace("/usr/local/bin/ryze-events", BIN)
    path = tmp_path / "ryze-events-deliver.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ryze-events" not in r.stderr, r.stderr
