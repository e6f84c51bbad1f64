"""SPEC §6.2: GET /ws/:instance, the WebSocket stream, through nginx + nchan.

The app gates the upgrade over FastCGI (refusals as plain HTTP with the JSON envelope) and hands
the connection to nchan with X-Accel-Redirect on the channel `account.instance`; the workers
publish to nchan's publisher on a unix socket (`--fanout-socket`). Test deployments ping every
2 s (production: 30 s)."""
import base64
import hashlib
import json
import os
import queue
import re
import socket
import subprocess
import threading
import time

import pytest
import websocket

from conftest import FAST
from harness import BIN, ROOT, Deployment

MISSING = "Missing token in header, Authorization header, or query parameter"
NOT_ENABLED = "WebSocket is not enabled for this instance. Configure it first using POST /api/events/websocket/"
ORIGIN = "https://app.example"
PING = 2


@pytest.fixture(scope="module")
def d(backend):
    dep = Deployment(workers=2, threads=4, ws_ping_interval=PING,
                     args=FAST + ["--ws-origin", ORIGIN, "--base-url", "https://api.example"]).start()
    yield dep
    log = (dep.dir / "nginx-error.log").read_text()
    dep.close()
    assert "exited on signal" not in log, log   # no nginx worker crashed (nchan 1.3.6 has crash reports)


@pytest.fixture
def acct(d, request):
    name = "s" + str(abs(hash(request.node.nodeid)))[:12]
    return name, d.account(name)


@pytest.fixture(scope="module")
def pub(d):
    return d.cli("publisher", "create", "--name", "stream-producer").stdout.strip()


# --- helpers ----------------------------------------------------------------------------------
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode()}


def handshake(d, path, token=None, headers=None):
    """The upgrade request as plain HTTP: a refusal comes back as an ordinary response."""
    return d.request("GET", path, token=token, headers={**UPGRADE, **(headers or {})})


class Subscriber:
    """A real WebSocket client (websocket-client) with a reader thread: frames are queued as they
    come, and pings are answered (websocket-client pongs inside recv)."""

    def __init__(self, d, path, token=None, bearer=None, origin=None):
        headers = []
        if token:
            headers.append(f"token: {token}")
        if bearer:
            headers.append(f"Authorization: Bearer {bearer}")
        kw = {"origin": origin} if origin else {"suppress_origin": True}
        self.ws = websocket.create_connection(f"ws://{d.host}:{d.port}{path}", header=headers, timeout=10, **kw)
        self.status = self.ws.getstatus()
        self.headers = self.ws.getheaders()
        self.frames = queue.Queue()
        self.pings = []
        self.closed = None   # (code, reason) once the server closed
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            while True:
                opcode, frame = self.ws.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_PING:
                    self.pings.append(time.time())
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    data = frame.data
                    self.closed = (int.from_bytes(data[:2], "big") if len(data) >= 2 else None, data[2:].decode())
                    return
                elif opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    self.frames.put((opcode, frame.data))
        except Exception as e:   # connection gone
            if self.closed is None:
                self.closed = (None, repr(e))

    def next(self, timeout=5):
        opcode, data = self.frames.get(timeout=timeout)
        assert opcode == websocket.ABNF.OPCODE_TEXT, "events are text frames"
        return data

    def nothing_within(self, seconds):
        try:
            got = self.frames.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected frame {got!r}")

    def wait_closed(self, timeout=5):
        self.thread.join(timeout)
        return self.closed

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def channel(account, name, instance_token):
    """StreamChannel.id: `account.instance.` + the last 8 bytes of the instance token's SHA-256."""
    return f"{account}.{name}.{hashlib.sha256(instance_token.encode()).digest()[-8:].hex()}"


def fanout(d, channel, body, method="POST"):
    """Straight to nchan's publisher socket, as a worker does (the wiring itself under test)."""
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--unix-socket", str(d.fanout),
                        "-X", method, "-H", "Content-Type: application/json", "--data-binary", body,
                        f"http://fanout/pub/{channel}"], capture_output=True, text=True)
    return int(r.stdout)


def subscribed(d, code):
    """nchan's answer to a publish on a channel someone is subscribed to: 201. In nchan's Redis
    mode (the PostgreSQL + Redis pass) the subscriber count reaches Redis a moment after the
    upgrade, so a publish right after it may answer 202 and still reach the subscriber: there the
    frames the tests then wait for are the proof."""
    return code == 201 or (d.shared is not None and code == 202)


def publish(d, pub, name, event, data, **extra):
    r = d.request("POST", f"/api/events/publish/{name}", token=pub, body={"event": event, "data": data, **extra})
    assert r.status == 202, r
    return r.json["event"]


def instance(d, token, name, **ws):
    fields = {"websocketEnabled": True, **{"websocket" + k[0].upper() + k[1:]: v for k, v in ws.items()}}
    return d.create_instance(token, name, **fields)


def envelope(event, data, name):
    return {"event": event, "data": data, "instanceData": {"baseUrl": "https://api.example", "instance": name}}


# --- refusals before the upgrade -------------------------------------------------------------
def test_every_refusal_before_the_upgrade_is_plain_http_with_the_envelope(d, acct):
    name, token = acct
    shop = instance(d, token, "shop")
    other = instance(d, token, "other")
    d.create_instance(token, "Never_Saved")
    d.create_instance(token, "off", websocketEnabled=False)
    cases = [
        ("/ws/shop", None, {}, 401, MISSING),
        ("/ws/shop", "not-a-token-at-all", {}, 401, "Invalid token"),
        ("/ws/shop", other, {}, 403, "Instance token does not match the requested instance"),
        ("/ws/ghost", token, {}, 404, "Instance not found"),
        ("/ws/ghost", shop, {}, 403, "Instance token does not match the requested instance"),
        ("/ws/Never_Saved", token, {}, 400, NOT_ENABLED + "Never_Saved"),
        ("/ws/off", token, {}, 400, NOT_ENABLED + "off"),
        ("/ws/shop", shop, {"Origin": "https://evil.example"}, 403, "Origin not allowed"),
        ("/ws/shop", shop, {"Origin": ORIGIN + "/"}, 403, "Origin not allowed"),
        ("/ws/shop/x", shop, {}, 404, "Route not found"),
    ]
    for path, tok, headers, status, message in cases:
        r = handshake(d, path, token=tok, headers=headers)
        assert (r.status, r.json) == (status, {"success": False, "error": {"message": message}}), (path, tok, headers, r)
        assert r.headers["content-type"] == "application/json"
        assert "x-ratelimit-limit" in r.headers and "x-accel-redirect" not in r.headers
        assert "upgrade" not in r.headers and "sec-websocket-accept" not in r.headers
    # What a WebSocket client library sees: the status and the body, no connection.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{d.port}/ws/off", header=[f"token: {token}"], suppress_origin=True)
    assert refused.value.status_code == 400
    assert json.loads(refused.value.resp_body) == {"success": False, "error": {"message": NOT_ENABLED + "off"}}
    # A browser's default Origin (the page's own) is refused unless configured; the configured one is not.
    with pytest.raises(websocket.WebSocketBadStatusException) as foreign:
        websocket.create_connection(f"ws://127.0.0.1:{d.port}/ws/shop?token={shop}")   # Origin: http://127.0.0.1:port
    assert foreign.value.status_code == 403
    s = Subscriber(d, f"/ws/shop?token={shop}", origin=ORIGIN)
    assert s.status == 101
    s.close()


def test_not_a_websocket_request_and_the_internal_location(d, acct):
    name, token = acct
    instance(d, token, "plain")
    r = d.request("GET", "/ws/plain", token=token)   # authorized, but no Upgrade
    assert (r.status, r.json) == (426, {"success": False, "error": {"message": "WebSocket upgrade required"}})
    assert "x-ratelimit-remaining" in r.headers
    # The subscriber location is reachable only through the gate.
    r = handshake(d, f"/__ryze_ws/{name}.plain", token=token)
    assert (r.status, r.json) == (404, {"success": False, "error": {"message": "Route not found"}})


def test_the_upgrade_counts_against_the_tokens_bucket(fresh):
    dep = fresh(args=["--rate-limit", "3", "--anon-rate-limit", "60000", "--create-rate-limit", "60000"])
    token = dep.account("limited")
    inst = instance(dep, token, "shop")
    first = Subscriber(dep, "/ws/shop", token=token)
    assert first.status == 101
    assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == ("3", "2")
    assert dep.request("GET", "/api/instance/list", token=token).headers["x-ratelimit-remaining"] == "1"
    second = Subscriber(dep, f"/ws/shop?token={token}")
    assert second.headers["x-ratelimit-remaining"] == "0"
    r = handshake(dep, "/ws/shop", token=token)
    assert (r.status, r.json) == (429, {"success": False, "error": {"message": "Rate limit exceeded. Try again later."}})
    assert int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-remaining"] == "0"
    # The open connections are not charged again while they stay open.
    assert subscribed(dep, fanout(dep, channel("limited", "shop", inst), '{"n":1}'))
    assert first.next() == second.next() == b'{"n":1}'
    first.close()
    second.close()


# --- the stream --------------------------------------------------------------------------------
def test_each_token_source_subscribes_and_frames_arrive_through_the_fanout_socket(d, acct):
    name, token = acct
    long_name = "L" * 100
    inst = instance(d, token, long_name)
    subs = [Subscriber(d, f"/ws/{long_name}", token=token),
            Subscriber(d, f"/ws/{long_name}", bearer=inst),
            Subscriber(d, f"/ws/{long_name}?token={inst}")]
    assert [s.status for s in subs] == [101, 101, 101]
    assert all(s.headers["upgrade"].lower() == "websocket" for s in subs)
    body = '{"event":"call.update","data":{"x":"é"}}'
    assert subscribed(d, fanout(d, channel(name, long_name, inst), body))
    for s in subs:
        assert s.next() == body.encode()
    assert fanout(d, channel(name, "nobody", inst), body) == 202    # 202: nobody is
    assert fanout(d, f"{name}.{long_name}", body) == 404            # not a channel id
    for s in subs:
        s.close()


def test_published_events_arrive_as_the_envelope_filtered_and_stripped(d, acct, pub):
    name, token = acct
    instance(d, token, "shop", events=["message.exchange", "call.update"])
    instance(d, token, "media", mediaBase64=True)
    shop = Subscriber(d, "/ws/shop", token=token)
    media = Subscriber(d, "/ws/media", token=token)
    data = {"message": {"media": {"base64": "QUJD", "mimetype": "image/png"}, "text": "hi"}, "n": 1}
    ev = publish(d, pub, f"{name}.shop", "message.exchange", data, id="evt-1")
    assert ev == {"id": "evt-1", "websocket": True, "webhooks": 0}
    got = json.loads(shop.next())
    assert got == envelope("message.exchange", {"message": {"media": {"mimetype": "image/png"}, "text": "hi"}, "n": 1}, "shop")
    # Filtered out by the instance's events: not streamed, and the answer says so.
    assert publish(d, pub, f"{name}.shop", "group.flow", {"g": 1})["websocket"] is False
    assert publish(d, pub, f"{name}.shop", "call.update", {"c": 2})["websocket"] is True
    assert json.loads(shop.next()) == envelope("call.update", {"c": 2}, "shop")   # group.flow never came
    # mediaBase64 true keeps the media; events [] takes all six types.
    assert publish(d, pub, f"{name}.media", "label.update", data)["websocket"] is True
    assert json.loads(media.next()) == envelope("label.update", data, "media")
    # A 1 MiB event goes through the fan-out whole.
    big = {"blob": "y" * (1024 * 1024 - 100)}
    assert publish(d, pub, f"{name}.media", "call.update", big)["websocket"] is True
    assert json.loads(media.next()) == envelope("call.update", big, "media")
    assert shop.frames.empty()
    shop.close()
    media.close()


def test_a_late_joiner_gets_nothing_published_before(d, acct, pub):
    name, token = acct
    instance(d, token, "late")
    early = Subscriber(d, "/ws/late", token=token)
    assert publish(d, pub, f"{name}.late", "call.update", {"n": 1})["websocket"] is True
    assert json.loads(early.next())["data"] == {"n": 1}
    late = Subscriber(d, "/ws/late", token=token)
    publish(d, pub, f"{name}.late", "call.update", {"n": 2})
    assert json.loads(late.next())["data"] == {"n": 2}
    assert json.loads(early.next())["data"] == {"n": 2}
    early.close()
    late.close()


def test_cross_account_isolation(d, pub):
    a, b = "isoa", "isob"
    ta, tb = d.account(a), d.account(b)
    ia, ib = instance(d, ta, "shop"), instance(d, tb, "shop")
    subs_a = [Subscriber(d, "/ws/shop", token=ta), Subscriber(d, "/ws/shop", token=ia)]
    subs_b = [Subscriber(d, "/ws/shop", token=tb), Subscriber(d, f"/ws/shop?token={ib}")]
    publish(d, pub, f"{a}.shop", "call.update", {"for": "a"})
    publish(d, pub, f"{b}.shop", "call.update", {"for": "b"})
    for s in subs_a:
        assert json.loads(s.next())["data"] == {"for": "a"}
    for s in subs_b:
        assert json.loads(s.next())["data"] == {"for": "b"}
    for s in subs_a + subs_b:
        assert s.nothing_within(0.3)
    # No path names the other account's channel: a dotted name is no instance name.
    assert handshake(d, f"/ws/{a}.shop", token=tb).json["error"]["message"] == "Instance not found"
    for s in subs_a + subs_b:
        s.close()


def test_pings_and_a_client_that_never_answers_is_closed(d, acct):
    name, token = acct
    instance(d, token, "ping")
    answering = Subscriber(d, "/ws/ping", token=token)
    # A raw client that reads but never answers a ping.
    raw = socket.create_connection(("127.0.0.1", d.port))
    raw.sendall(("GET /ws/ping HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in UPGRADE.items())
                 + f"token: {token}\r\n\r\n").encode())
    raw.settimeout(4 * PING + 2)
    started = time.time()
    received = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        received += chunk
    silent_for = time.time() - started
    raw.close()
    assert received.startswith(b"HTTP/1.1 101 ")
    frames = received.split(b"\r\n\r\n", 1)[1]
    assert frames.startswith(b"\x89\x00")                 # a ping...
    assert b"\x88" in frames                              # ...then a close frame, then the end
    assert 2 * PING - 0.5 <= silent_for <= 3 * PING + 1   # closed after two intervals without an answer
    # The client that answers is pinged once per interval and stays open.
    Deployment.wait_for(lambda: len(answering.pings) >= 2, "a second ping", 2 * PING)
    assert answering.pings[0] - started <= PING + 1
    assert answering.closed is None
    answering.close()


def test_deleting_the_instance_closes_its_connections_and_a_new_one_streams_again(d, acct, pub):
    name, token = acct
    instance(d, token, "stays")
    stays = Subscriber(d, "/ws/stays", token=token)
    # Several rounds with connections on both nginx workers: with nchan 1.3.6, reusing a channel
    # id after a DELETE breaks it, so each incarnation of "gone" has a channel of its own.
    for n in range(3):
        inst = instance(d, token, "gone")
        subs = [Subscriber(d, "/ws/gone", token=token), Subscriber(d, "/ws/gone", bearer=inst),
                Subscriber(d, f"/ws/gone?token={inst}"), Subscriber(d, "/ws/gone", token=inst)]
        assert publish(d, pub, f"{name}.gone", "call.update", {"n": n})["websocket"] is True
        for s in subs:
            assert json.loads(s.next())["data"] == {"n": n}
        assert d.request("DELETE", "/api/instance/delete/gone", token=token).status == 200
        for s in subs:
            assert s.wait_closed(3) == (1001, "410 Gone")
        assert handshake(d, "/ws/gone", token=inst).json["error"]["message"] == "Invalid token"
        assert handshake(d, "/ws/gone", token=token).json["error"]["message"] == "Instance not found"
    assert stays.closed is None
    publish(d, pub, f"{name}.stays", "call.update", {"still": True})
    assert json.loads(stays.next())["data"] == {"still": True}
    stays.close()


def test_disabling_the_configuration_closes_open_connections_and_enabling_streams_again(d, acct, pub):
    name, token = acct
    inst = instance(d, token, "toggle")
    bystander = instance(d, token, "bystander")
    stays = Subscriber(d, "/ws/bystander", token=bystander)
    # Several rounds with connections on both nginx workers: with nchan 1.3.6, reusing a channel
    # id after a DELETE breaks it, so each time the configuration is disabled the instance moves to
    # a channel of its own.
    for n in range(3):
        subs = [Subscriber(d, "/ws/toggle", token=inst), Subscriber(d, "/ws/toggle", token=token),
                Subscriber(d, f"/ws/toggle?token={inst}"), Subscriber(d, "/ws/toggle", bearer=inst)]
        assert publish(d, pub, f"{name}.toggle", "call.update", {"n": n})["websocket"] is True
        for s in subs:
            assert json.loads(s.next())["data"] == {"n": n}
        # Changing an enabled configuration keeps the connections.
        assert d.request("POST", "/api/events/websocket/toggle", token=inst,
                         body={"enabled": True, "events": ["call.update"]}).status == 200
        assert all(s.closed is None for s in subs)
        r = d.request("POST", "/api/events/websocket/toggle", token=inst, body={"enabled": False})
        assert (r.status, r.json["websocket"]) == (200, {"enabled": False, "events": [], "mediaBase64": False})
        for s in subs:
            assert s.wait_closed(3) == (1001, "410 Gone")
        assert publish(d, pub, f"{name}.toggle", "call.update", {"n": -1})["websocket"] is False
        r = handshake(d, "/ws/toggle", token=inst)
        assert (r.status, r.json["error"]["message"]) == (400, NOT_ENABLED + "toggle")
        # Saving it disabled again closes nothing and changes nothing.
        assert d.request("POST", "/api/events/websocket/toggle", token=token, body={"enabled": False}).status == 200
        assert d.request("POST", "/api/events/websocket/toggle", token=token, body={"enabled": True}).status == 200
    again = [Subscriber(d, "/ws/toggle", token=inst) for _ in range(4)]
    publish(d, pub, f"{name}.toggle", "call.update", {"back": True})
    for s in again:
        assert json.loads(s.next())["data"] == {"back": True}
        s.close()
    # Another instance's connection was never touched.
    assert stays.closed is None
    publish(d, pub, f"{name}.bystander", "call.update", {"still": True})
    assert json.loads(stays.next())["data"] == {"still": True}
    stays.close()


def test_disabling_the_account_closes_its_connections_through_the_fanout_socket(d, pub):
    name, other = "gone-account", "kept-account"
    token, kept_token = d.account(name), d.account(other)
    one, two = instance(d, token, "one"), instance(d, token, "two")
    instance(d, kept_token, "one")
    subs = [Subscriber(d, "/ws/one", token=one), Subscriber(d, "/ws/one", token=token),
            Subscriber(d, "/ws/two", token=two), Subscriber(d, "/ws/two", bearer=two)]
    kept = Subscriber(d, "/ws/one", token=kept_token)
    publish(d, pub, f"{name}.one", "call.update", {"n": 1})
    publish(d, pub, f"{name}.two", "call.update", {"n": 1})
    for s in subs:
        assert json.loads(s.next())["data"] == {"n": 1}
    r = d.cli("account", "disable", name, "--fanout-socket", str(d.fanout))
    assert r.stdout == f"account {name} disabled\n" and r.stderr == ""
    for s in subs:
        assert s.wait_closed(3) == (1001, "410 Gone")
    for tok in (one, two, token):
        assert handshake(d, "/ws/one", token=tok).json["error"]["message"] == "Invalid token"
    # The other account's instance of the same name streams on.
    assert kept.closed is None
    publish(d, pub, f"{other}.one", "call.update", {"still": True})
    assert json.loads(kept.next())["data"] == {"still": True}
    kept.close()


def test_disabling_the_account_without_the_fanout_socket_says_the_connections_stay_open(d, pub):
    name = "quiet-account"
    token = d.account(name)
    inst = instance(d, token, "shop")
    sub = Subscriber(d, "/ws/shop", token=inst)
    r = d.cli("account", "disable", name)
    assert r.stdout == f"account {name} disabled\n"
    assert "no --fanout-socket" in r.stderr and "1 instance(s)" in r.stderr
    assert sub.nothing_within(0.5) and sub.closed is None
    assert handshake(d, "/ws/shop", token=inst).json["error"]["message"] == "Invalid token"
    # Run again with the socket (here through the environment): the account stays disabled and
    # its connections close.
    r = subprocess.run([BIN, "account", "disable", name, "--data-dir", str(d.data), *d.store_args], capture_output=True, text=True,
                       env={**os.environ, "RYZE_FANOUT_SOCKET": str(d.fanout)})
    assert (r.returncode, r.stderr) == (0, "")
    assert sub.wait_closed(3) == (1001, "410 Gone")
    # A fan-out that is not there is a failure with a reason, after the disable itself.
    r = d.cli("account", "disable", name, "--fanout-socket", str(d.dir / "nowhere.sock"), check=False)
    assert r.returncode == 1 and r.stdout == f"account {name} disabled\n"
    assert "did not close the connections of 1 of 1 instance(s)" in r.stderr


@pytest.mark.parametrize("flag,value", [("--ws-origin", "https://app.example/"), ("--ws-origin", "app.example"),
                                        ("--fanout-socket", "relative.sock"), ("--fanout-socket", "/" + "x" * 107)])
def test_bad_stream_flags_exit_with_a_reason(tmp_path, flag, value):
    from harness import BIN
    r = subprocess.run([BIN, "serve", "--data-dir", str(tmp_path / "data"), flag, value], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=10)
    assert r.returncode != 0 and flag in r.stderr


def test_production_config_pings_within_thirty_seconds():
    example = (ROOT / "nginx.conf.example").read_text()
    intervals = [int(v) for v in re.findall(r"nchan_websocket_ping_interval (\d+);", example)]
    assert intervals and all(0 < v <= 30 for v in intervals)
    assert "nchan_store_messages off;" in example and "nchan_subscriber_first_message newest;" in example
    local = (ROOT / "deploy" / "local-run.sh").read_text()
    assert re.search(r"@WS_PING_INTERVAL@\|(\d+)\|", local) and int(re.search(r"@WS_PING_INTERVAL@\|(\d+)\|", local)[1]) <= 30


def test_an_idle_subscriber_outlives_nginxs_client_timeouts(fresh):
    """nginx's client_header_timeout, client_body_timeout, send_timeout and keepalive_timeout
    (10 s and 30 s in the templates) must not end a WebSocket that is quiet between pings
    (30 s in production): here they are 1 s, the ping interval 30 s, and the subscriber idles 4 s."""
    dep = fresh(ws_ping_interval=30, args=FAST + ["--base-url", "https://api.example"],
                nginx_server="client_header_timeout 1s; client_body_timeout 1s; send_timeout 1s; keepalive_timeout 1s;")
    token = dep.account("idle")
    pub = dep.cli("publisher", "create", "--name", "idle-producer").stdout.strip()
    instance(dep, token, "quiet")
    s = Subscriber(dep, f"/ws/quiet?token={token}")
    assert s.status == 101
    time.sleep(4)
    assert s.closed is None and not s.pings
    publish(dep, pub, "quiet", "call.update", {"n": 1})
    assert json.loads(s.next()) == envelope("call.update", {"n": 1}, "quiet")
    s.close()
