"""Resource bounds: clients that hold connections open without finishing a request (a slow loris
dribbling its headers, 1,000 idle connections, a 1 MiB header, a body that stops half way) tie up
no worker thread beyond its timeout.

How each test proves it: while the attack is on, a probe keeps sending ordinary requests and
reading the worker's status page (`--status-path /status`; one worker, so the page describes the
worker that serves everything). Every ordinary request must be answered, each within PROBE_BOUND
seconds, and `threads.busy` must stay at 1: the status request itself is the only request in
flight, so no thread is held by the attacker. Through nginx that holds because nginx reads a whole
request (headers, and the body: fastcgi_request_buffering is on) before it opens a FastCGI
connection, so the worker never sees these clients; the worker's log shows that it never did.
Straight on the worker's socket (a client that reaches it, or an nginx that does not buffer) the
bound is the worker's own `--read-timeout`: a held thread counts as busy, and is free again once
the timeout has passed.

That nginx itself lets go of such clients in reasonable time is the last two tests: the template,
as nginx.conf.example, sets client_header_timeout and client_body_timeout to 10 s (nginx's default
is 60 s), and nginx closes such a connection without an answer.
"""
import json
import resource
import socket
import struct
import threading
import time

import pytest

from harness import Deployment

FAST = ["--rate-limit", "60000", "--create-rate-limit", "60000", "--anon-rate-limit", "60000"]

PROBE_BOUND = 2.0       # seconds: the slowest ordinary answer allowed while an attack is on
ATTACK_SECONDS = 4.0    # how long each attack runs while the probe measures


@pytest.fixture(scope="module")
def one_worker(backend):
    """One worker (so the status page describes the only worker), four threads."""
    d = Deployment(workers=1, threads=4, args=FAST + ["--status-path", "/status"]).start()
    d.token = d.account("bounds")
    d.create_instance(d.token, "b")
    yield d
    d.close()


class Probe:
    """Ordinary requests and status reads, back to back, in a thread of its own."""

    def __init__(self, d):
        self.d = d
        self.latencies, self.statuses, self.busy = [], [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                r = self.d.request("GET", "/api/events/getWebsocket/b", token=self.d.token)
                self.statuses.append(r.status)
            except OSError as e:
                self.statuses.append(repr(e))
            self.latencies.append(time.monotonic() - start)
            self.busy.append(self.d.request("GET", "/status").json["threads"]["busy"])
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)

    def check(self):
        print(f"probe: {len(self.statuses)} requests, slowest {max(self.latencies) * 1000:.0f} ms, busy {sorted(set(self.busy))}")
        assert len(self.statuses) >= 5, self.statuses
        assert set(self.statuses) == {404}, self.statuses[:10]   # never configured: the contract's 404
        assert max(self.latencies) < PROBE_BOUND, max(self.latencies)
        assert set(self.busy) == {1}, self.busy   # the status request alone


def http_connect(d):
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    return s


def worker_saw(d, path):
    time.sleep(0.2)
    return f" {path} " in d.log.read_text()


def test_slow_loris_headers_hold_no_worker_thread(one_worker):
    d = one_worker
    clients = []
    for k in range(20):
        s = http_connect(d)
        s.sendall(f"GET /api/loris/{k} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".encode())
        clients.append(s)
    with Probe(d) as probe:
        deadline = time.monotonic() + ATTACK_SECONDS
        while time.monotonic() < deadline:
            for s in clients:
                s.sendall(b"a")   # one byte of a header line that never ends
            time.sleep(0.2)
    probe.check()
    for s in clients:
        s.close()
    assert not worker_saw(d, "/api/loris/0")
    assert d.request("GET", "/status").json["threads"]["busy"] == 1


def test_a_thousand_idle_connections_hold_no_worker_thread(one_worker):
    d = one_worker
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle = [http_connect(d) for _ in range(1000)]
    try:
        with Probe(d) as probe:
            time.sleep(ATTACK_SECONDS)
        probe.check()
        # nginx held every one of them open all along (its client_header_timeout is 10 s).
        for s in idle[:50]:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
    finally:
        for s in idle:
            s.close()
    assert d.request("GET", "/status").json["threads"]["busy"] == 1


def test_a_one_mib_header_is_refused_by_nginx_and_holds_nothing(one_worker):
    d = one_worker
    answers = []

    def send_huge():
        s = http_connect(d)
        try:
            s.sendall(b"GET /api/huge-header HTTP/1.1\r\nHost: localhost\r\ntoken: " + b"a" * (1 << 20) + b"\r\n\r\n")
            answers.append(s.recv(200))
        except OSError as e:   # nginx may answer and close before it has read the whole header
            answers.append(repr(e))
        finally:
            s.close()
    with Probe(d) as probe:
        senders = [threading.Thread(target=send_huge) for _ in range(4)]
        for t in senders:
            t.start()
        time.sleep(ATTACK_SECONDS)
        for t in senders:
            t.join(15)
    probe.check()
    assert len(answers) == 4
    for a in answers:
        assert isinstance(a, str) or a.startswith(b"HTTP/1.1 400"), a   # "Request Header Or Cookie Too Large"
    assert not worker_saw(d, "/api/huge-header")


def test_a_body_that_stops_half_way_holds_no_worker_thread(one_worker):
    d = one_worker
    clients = []
    for k in range(10):
        s = http_connect(d)
        s.sendall(f"POST /api/events/websocket/b?half={k} HTTP/1.1\r\nHost: localhost\r\ntoken: {d.token}\r\n"
                  f"Content-Length: 10000\r\n\r\n".encode() + b'{"enabled":' + b" " * 4989)
        clients.append(s)
    with Probe(d) as probe:
        time.sleep(ATTACK_SECONDS)
    probe.check()
    for s in clients:
        s.close()
    # The worker never saw those requests: nginx buffers a body before it passes the request on.
    assert " /api/events/websocket/b " not in d.log.read_text()
    assert d.request("GET", "/status").json["threads"]["busy"] == 1


# --- straight on the worker's socket: the worker's own read timeout is the bound ---------------

def fcgi_record(kind, content, request_id=1):
    return struct.pack(">BBHHBB", 1, kind, request_id, len(content), 0, 0) + content


def fcgi_pair(name, value):
    return bytes([len(name), len(value)]) + name + value


def test_a_half_body_on_the_worker_socket_holds_a_thread_only_until_the_read_timeout(fresh):
    d = fresh(workers=1, threads=2, args=FAST + ["--status-path", "/status", "--read-timeout", "2"])
    t = d.account("direct")
    params = (fcgi_pair(b"REQUEST_METHOD", b"POST") + fcgi_pair(b"REQUEST_URI", b"/api/instance/new")
              + fcgi_pair(b"HTTP_TOKEN", t.encode()) + fcgi_pair(b"CONTENT_LENGTH", b"100"))
    stuck = socket.socket(socket.AF_UNIX)
    stuck.connect(str(d.sock))
    stuck.sendall(fcgi_record(1, b"\x00\x01\x00\x00\x00\x00\x00\x00") + fcgi_record(4, params) + fcgi_record(4, b"")
                  + fcgi_record(5, b'{"name":'))
    time.sleep(0.3)
    held_at = time.monotonic()
    # One thread holds the half request (busy), the other answers: ordinary requests go on.
    assert d.request("GET", "/status").json["threads"]["busy"] == 2
    start = time.monotonic()
    assert d.request("GET", "/api/instance/list", token=t).status == 200
    assert time.monotonic() - start < PROBE_BOUND
    # Within the read timeout (2 s) and a margin, the thread is free and the peer dropped.
    d.wait_for(lambda: d.request("GET", "/status").json["threads"]["busy"] == 1, "the held thread to be freed", timeout=5)
    assert time.monotonic() - held_at < 2 + PROBE_BOUND
    stuck.settimeout(3)
    data = b""
    while chunk := stuck.recv(4096):
        data += chunk
    assert b"Status: 20" not in data


def test_dribbled_parameters_on_the_worker_socket_hold_a_thread_only_until_the_read_timeout(fresh):
    """A slow loris on FastCGI: a record that arrives a byte at a time, then stops. The read timeout
    is per read (SO_RCVTIMEO), so a peer that keeps dribbling faster than the timeout holds its
    thread for as long as it dribbles; only nginx stands between clients and the socket. Once it
    pauses for longer than the timeout, the thread is free."""
    d = fresh(workers=1, threads=1, args=FAST + ["--status-path", "/status", "--read-timeout", "1"])
    t = d.account("dribble")
    record = fcgi_record(1, b"\x00\x01\x00\x00\x00\x00\x00\x00") + fcgi_record(4, fcgi_pair(b"REQUEST_METHOD", b"GET"))
    stuck = socket.socket(socket.AF_UNIX)
    stuck.connect(str(d.sock))
    for b in record[:12]:
        stuck.sendall(bytes([b]))
        time.sleep(0.1)
    # Then nothing: within the timeout and a margin the only thread answers again.
    start = time.monotonic()
    assert d.request("GET", "/api/instance/list", token=t).status == 200
    assert time.monotonic() - start < 1 + PROBE_BOUND
    assert d.request("GET", "/status").json["threads"]["busy"] == 1


# --- the JSON depth limit, end to end -----------------------------------------------------------

def test_too_deep_a_body_is_a_400(deployment, acct):
    d = deployment
    d.create_instance(acct, "deep")
    publisher = d.cli("publisher", "create", "--name", "deep-bodies").stdout.strip()
    nested = '{"a":' * 64 + "1" + "}" * 64
    for body in ['{"enabled":true,"x":' + nested + "}", "[" * 60000]:
        r = d.request("POST", "/api/events/websocket/deep", token=acct, body=body)
        assert (r.status, r.message) == (400, "Invalid request body")
    for body in ['{"event":"call.update","data":' + nested + "}", "[" * (1 << 20)]:
        r = d.request("POST", "/api/events/publish/deep", token=publisher, body=body)
        assert (r.status, r.message) == (400, "Invalid request body")
    # 63 levels inside the body object: within the limit.
    ok = '{"a":' * 62 + "1" + "}" * 62
    r = d.request("POST", "/api/events/publish/deep", token=publisher, body='{"event":"call.update","data":' + ok + "}")
    assert r.status == 202, r
    assert d.request("GET", "/api/events/getWebsocket/deep", token=acct).status == 404   # the worker lives on


# --- nginx's own timeouts (see the module's docstring) ------------------------------------------

NGINX_TIMEOUT = 10      # client_header_timeout and client_body_timeout in the template and nginx.conf.example


def closed_within(s, seconds):
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def test_nginx_lets_go_of_idle_and_slow_loris_clients_within_its_header_timeout(one_worker):
    d = one_worker
    idle = http_connect(d)
    loris = http_connect(d)
    loris.sendall(b"GET /api/loris HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    start = time.monotonic()

    def dribble():
        while time.monotonic() - start < NGINX_TIMEOUT + 3:
            try:
                loris.sendall(b"a")
            except OSError:
                return
            time.sleep(0.5)
    threading.Thread(target=dribble, daemon=True).start()
    try:
        assert closed_within(idle, NGINX_TIMEOUT + 2)
        assert closed_within(loris, max(0.1, NGINX_TIMEOUT + 2 - (time.monotonic() - start)))
    finally:
        idle.close()
        loris.close()


def test_nginx_lets_go_of_a_stalled_body_within_its_body_timeout(one_worker):
    d = one_worker
    s = http_connect(d)
    s.sendall(f"POST /api/events/websocket/b HTTP/1.1\r\nHost: localhost\r\ntoken: {d.token}\r\n"
              f"Content-Length: 100\r\n\r\n".encode() + b'{"enabled":')
    try:
        assert closed_within(s, NGINX_TIMEOUT + 2)
    finally:
        s.close()
