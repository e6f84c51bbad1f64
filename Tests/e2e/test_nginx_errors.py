"""nginx's own errors in the API's envelope (SPEC §1: every response is JSON; README "Robustness").

Each error nginx itself can make is provoked for real through deploy/nginx-local.conf.template,
which includes deploy/nginx-errors.conf as nginx.conf.example does: raw bytes on a socket where an
HTTP client would refuse to send them (a bad request line, bad percent-encoding, a huge URI or
header), the workers stopped (502) or frozen (504), short timeouts (408). Every answer must be
exactly the envelope, as application/json, with the status nginx chose; and the app's own errors
(fastcgi_intercept_errors is off) and the stream gate's refusals must still pass through as the
app wrote them.
"""
import http.client
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from harness import ROOT, free_port

ERRORS_CONF = ROOT / "deploy" / "nginx-errors.conf"


def err(message):
    return {"success": False, "error": {"message": message}}


class Raw:
    """An answer read off a raw socket: status, headers (lower-case names), body, parsed JSON."""

    def __init__(self, resp):
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.body = resp.read()
        self.json = json.loads(self.body) if self.body else None

    def __repr__(self):
        return f"<{self.status} {self.headers.get('content-type')} {self.body[:200]!r}>"


def raw(d, data, timeout=10, port=None):
    """Sends `data` as it is on a connection of its own (to d's port, or `port`) and reads one
    answer (None: nginx closed the connection without answering)."""
    s = socket.create_connection(("127.0.0.1", port or d.port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:   # nginx may answer and close before it has read everything
            pass
        resp = http.client.HTTPResponse(s)
        try:
            resp.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        return Raw(resp)
    finally:
        s.close()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def assert_nginx_error(r, status, message):
    assert r is not None, "no answer"
    assert (r.status, r.headers.get("content-type"), r.json) == (status, "application/json", err(message)), r
    # What nginx refuses never reached the app: nothing was charged, so no rate-limit headers
    # (the one exception to SPEC §1's last line; README "Robustness").
    assert "x-ratelimit-limit" not in r.headers, r.headers


# --- requests nginx cannot take ------------------------------------------------------------------

@pytest.mark.parametrize("request_bytes", [
    b"GET /api/events/getWebsocket/%zz HTTP/1.1\r\nHost: localhost\r\n\r\n",   # bad percent-encoding
    b"GET /api/instance/list%2 HTTP/1.1\r\nHost: localhost\r\n\r\n",           # truncated escape
    b"HELLO WORLD FOO\r\n\r\n",                                                 # no request line
    b"GET / HTTP/1.1 trailing\r\nHost: localhost\r\n\r\n",
    b"get /api/instance/list HTTP/1.1\r\nHost: localhost\r\n\r\n",             # a method in lower case
    b"GET /api/instance/list HTTP/1.1\r\n\r\n",                                 # HTTP/1.1 without Host
    b"GET /api/instance/list HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",           # two Hosts
    b"GET /api/instance/list HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
    b"POST /api/instance/new HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n",
    b"POST /api/instance/new HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
], ids=["percent-zz", "percent-truncated", "garbage-line", "extra-token", "lower-case-method",
        "no-host", "two-hosts", "header-without-colon", "bad-content-length", "chunked-http10"])
def test_a_request_nginx_cannot_parse_is_a_json_400(deployment, request_bytes):
    assert_nginx_error(raw(deployment, request_bytes), 400, "Bad request")


def test_a_uri_longer_than_the_header_buffers_is_a_json_414(deployment):
    # large_client_header_buffers: 4 × 8 KiB by default; a request line must fit in one.
    uri = b"/api/events/getWebsocket/" + b"a" * 9000
    assert_nginx_error(raw(deployment, b"GET " + uri + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"), 414,
                       "Request URI too long")


def test_a_header_larger_than_the_header_buffers_is_a_json_400(deployment):
    # One header line over 8 KiB, then a header of 40 KiB in lines that each fit: nginx's 494,
    # which it sends as a 400.
    one_line = b"GET /api/instance/list HTTP/1.1\r\nHost: localhost\r\ntoken: " + b"a" * 9000 + b"\r\n\r\n"
    assert_nginx_error(raw(deployment, one_line), 400, "Request header too large")
    many = b"GET /api/instance/list HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
        b"X-Filler-%d: " % k + b"b" * 4000 + b"\r\n" for k in range(10)) + b"\r\n"
    assert_nginx_error(raw(deployment, many), 400, "Request header too large")


def test_a_body_over_nginxs_cap_is_a_json_413(deployment, acct):
    # client_max_body_size 2m: refused on the announced length, before any of the body is read,
    # and on a chunk announced larger than what is left of the cap (once its first byte is in).
    announced = (f"POST /api/events/websocket/x HTTP/1.1\r\nHost: localhost\r\ntoken: {acct}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {3 << 20}\r\n\r\n").encode()
    assert_nginx_error(raw(deployment, announced), 413, "Request body too large")
    chunked = (f"POST /api/events/websocket/x HTTP/1.1\r\nHost: localhost\r\ntoken: {acct}\r\n"
               f"Transfer-Encoding: chunked\r\n\r\n{3 << 20:x}\r\n{{").encode()
    assert_nginx_error(raw(deployment, chunked), 413, "Request body too large")


def test_plain_http_to_a_tls_port_is_a_json_400(fresh, tmp_path):
    # nginx's 497, with `listen ... ssl` as nginx.conf.example suggests; a self-signed certificate.
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(key, 0o644)
    tls_port = free_port()
    d = fresh(workers=1, nginx_server=f"listen 127.0.0.1:{tls_port} ssl; ssl_certificate {cert}; "
                                      f"ssl_certificate_key {key};")
    d.wait_for(lambda: port_open(tls_port), "nginx to listen on the TLS port")
    r = raw(d, b"GET /api/instance/list HTTP/1.1\r\nHost: localhost\r\n\r\n", port=tls_port)
    assert_nginx_error(r, 400, "Bad request")


def test_trace_is_a_json_405_with_allow(deployment):
    r = raw(deployment, b"TRACE /api/instance/list HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert_nginx_error(r, 405, "Method not allowed")
    assert r.headers["allow"] == "GET, POST, DELETE, OPTIONS"


def test_an_unknown_transfer_encoding_is_a_json_501(deployment):
    r = raw(deployment, b"POST /api/instance/new HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert_nginx_error(r, 501, "Not implemented")


def test_an_http_version_nginx_does_not_speak_is_a_json_505(deployment):
    assert_nginx_error(raw(deployment, b"GET /api/instance/list HTTP/2.0\r\nHost: localhost\r\n\r\n"), 505,
                       "HTTP version not supported")


def test_the_internal_locations_are_json_404s_from_outside(deployment):
    for path in ["/__ryze/error/502", "/__ryze/error/400", "/__ryze_ws/acct.inst.00ff"]:
        r = deployment.request("GET", path)
        assert_nginx_error(r, 404, "Route not found")


def test_the_status_page_from_elsewhere_is_a_json_403(fresh):
    d = fresh(workers=1, args=["--status-path", "/status", "--rate-limit", "60000"])
    assert d.request("GET", "/status").status == 200   # localhost: the app's page
    # Any address of 127/8 but 127.0.0.1 is "elsewhere" to `allow 127.0.0.1; deny all;`.
    assert_nginx_error(d.request("GET", "/status", source_address="127.0.0.2"), 403, "Forbidden")


# --- the app's own errors pass through ----------------------------------------------------------

def test_the_apps_own_errors_are_not_replaced(deployment, acct):
    """fastcgi_intercept_errors is off: the app's statuses and messages reach the client as the
    app wrote them, rate-limit headers included (which nginx's own never carry)."""
    d = deployment
    d.create_instance(acct, "own")
    cases = [
        (d.request("GET", "/api/no-such-route", token=acct), 404, "Route not found"),
        (d.request("DELETE", "/api/instance/list", token=acct), 405, "Method not allowed"),
        (d.request("POST", "/api/instance/new", token=acct, body=b"{not json"), 400, "Invalid request body"),
        (d.request("POST", "/api/events/websocket/own", token=acct, body=b" " * (100 << 10)), 413, "Request body too large"),
        (d.request("GET", "/api/instance/list"), 401, None),
        (d.request("GET", "/ws/nope", token=acct, headers={"Upgrade": "websocket", "Connection": "Upgrade"}),
         404, "Instance not found"),
    ]
    for r, status, message in cases:
        assert r.status == status, r
        assert r.headers["content-type"] == "application/json", r.headers
        assert r.json["success"] is False and list(r.json) == ["success", "error"], r
        if message is not None:
            assert r.message == message, r
        assert "x-ratelimit-limit" in r.headers, (r, r.headers)
    assert "allow" in cases[1][0].headers


# --- the workers down, frozen or slow; clients too slow -----------------------------------------

def upgrade_bytes(path):
    return (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n\r\n").encode()


def test_workers_that_are_down_are_a_json_502(fresh):
    d = fresh(workers=1)
    t = d.account("down")
    d.stop_workers()
    # Nothing accepts on the socket: every location that reaches the workers, the stream's gate
    # and the status page included.
    assert_nginx_error(d.request("GET", "/api/instance/list", token=t), 502, "Upstream unavailable")
    assert_nginx_error(d.request("POST", "/api/instance/new", token=t, body={"name": "x"}), 502, "Upstream unavailable")
    assert_nginx_error(raw(d, upgrade_bytes(f"/ws/shop?token={t}")), 502, "Upstream unavailable")
    assert_nginx_error(d.request("GET", "/status"), 502, "Upstream unavailable")
    d.start_workers()
    assert d.request("GET", "/api/instance/list", token=t).status == 200


def stopped(pid):
    """Every thread of `pid` stopped (state T)."""
    tasks = pathlib.Path(f"/proc/{pid}/task")
    return all((t / "stat").read_text().rsplit(")", 1)[1].split()[0] == "T" for t in tasks.iterdir())


def test_workers_that_do_not_answer_are_a_json_504(fresh):
    # A frozen worker (SIGSTOP): the kernel still accepts connections on its socket, so nginx
    # connects, sends the request and waits fastcgi_read_timeout (1 s here, 30 s in production).
    d = fresh(workers=1, nginx_server="fastcgi_read_timeout 1s;")
    t = d.account("frozen")
    pids = d.worker_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    # The signal is delivered asynchronously: until each thread has stopped, one may still answer.
    d.wait_for(lambda: all(stopped(pid) for pid in pids), "the workers to stop", 5)
    try:
        start = time.monotonic()
        assert_nginx_error(d.request("GET", "/api/instance/list", token=t), 504, "Upstream timed out")
        assert 0.9 < time.monotonic() - start < 5
        assert_nginx_error(raw(d, upgrade_bytes(f"/ws/shop?token={t}")), 504, "Upstream timed out")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert d.request("GET", "/api/instance/list", token=t).status == 200


def test_500_and_503_as_nginx_makes_them(fresh):
    # The deployment makes neither on its own (no limit_req, no failing rewrite); a location of
    # the test's makes them as any nginx module would, and the server's error pages answer.
    d = fresh(workers=1, nginx_server="location = /__test/500 { return 500; }\n"
                                      "        location = /__test/503 { return 503; }")
    assert_nginx_error(d.request("GET", "/__test/500"), 500, "Internal server error")
    assert_nginx_error(d.request("GET", "/__test/503"), 503, "Service temporarily unavailable")


def closes_without_answering(s, within):
    """True when nginx closes `s` within `within` seconds, having sent nothing at all."""
    s.settimeout(within)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except socket.timeout:
        return False
    except ConnectionResetError:
        pass
    assert data == b"", data
    return True


def test_client_timeouts_close_the_connection_without_an_answer(fresh):
    """408: nginx 1.22 closes a connection whose header or body did not arrive in time without
    writing anything (408 appears in its access log only); so no HTML page either. The error page
    for 408 stays in deploy/nginx-errors.conf should a version answer."""
    d = fresh(workers=1, nginx_server="client_header_timeout 1s; client_body_timeout 1s;")
    t = d.account("slow")
    idle = socket.create_connection(("127.0.0.1", d.port))
    half_header = socket.create_connection(("127.0.0.1", d.port))
    half_header.sendall(b"GET /api/instance/list HTTP/1.1\r\nHost: localhost\r\ntoken: ")
    half_body = socket.create_connection(("127.0.0.1", d.port))
    half_body.sendall(f"POST /api/instance/new HTTP/1.1\r\nHost: localhost\r\ntoken: {t}\r\n"
                      f"Content-Length: 100\r\n\r\n".encode() + b'{"name":')
    try:
        for s in (idle, half_header, half_body):
            assert closes_without_answering(s, 4)
    finally:
        for s in (idle, half_header, half_body):
            s.close()
    assert " /api/instance/new " not in d.log.read_text()   # the half body never reached a worker


# --- the configuration files ----------------------------------------------------------------------

def test_every_server_block_includes_the_error_pages_and_intercepts_nothing():
    example = (ROOT / "nginx.conf.example").read_text()
    template = (ROOT / "deploy" / "nginx-local.conf.template").read_text()
    assert "include ryze-events-errors.conf;" in example
    assert "include @ROOT@/deploy/nginx-errors.conf;" in template
    # An error_page in a location would stop it inheriting the included ones.
    for text in (example, template):
        assert not re.search(r"^\s*error_page", text, re.M)
    for text in (example, template, ERRORS_CONF.read_text()):
        assert not re.search(r"^\s*fastcgi_intercept_errors\s+on", text, re.M)


def test_the_access_log_of_the_example_never_holds_a_query(tmp_path):
    """SPEC §2: tokens are never logged, and `?token=` carries one. The example's API server logs
    with its own format, without the request line, the query or the referer; that format is one
    nginx accepts, and a request with a token in its query leaves no trace of it in the log."""
    example = (ROOT / "nginx.conf.example").read_text()
    fmt = re.search(r"^log_format ryze_events .*?;$", example, re.M | re.S)[0]
    for variable in ("$request ", "$request\"", "$request_uri", "$args", "$query_string", "$is_args", "$arg_", "$http_referer"):
        assert variable not in fmt, variable
    [api_server] = [block for block in example.split("\nserver {")[1:] if "fastcgi_pass ryze_events" in block]
    assert re.search(r"^    access_log \S+ ryze_events;$", api_server, re.M)
    assert re.search(r"^    access_log off;$", api_server, re.M) is None
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}
http {{ {fmt}
  server {{ listen 127.0.0.1:{port}; access_log {tmp_path}/access.log ryze_events; location / {{ return 200 "ok"; }} }} }}
""")
    subprocess.run(["nginx", "-c", str(conf), "-p", str(tmp_path)], check=True)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ws/shop?token=never-logged-token-1234", timeout=5) as r:
            assert r.status == 200
    finally:
        subprocess.run(["nginx", "-c", str(conf), "-p", str(tmp_path), "-s", "quit"], check=True)
    deadline = time.time() + 5
    while (tmp_path / "nginx.pid").exists() and time.time() < deadline:
        time.sleep(0.05)
    log = (tmp_path / "access.log").read_text()
    assert "GET /ws/shop HTTP/1.1" in log and "never-logged" not in log and "token" not in log


def test_the_readme_lists_every_message():
    readme = (ROOT / "README.md").read_text()
    answers = re.findall(r"return (\d{3}) '(\{.*\})';", ERRORS_CONF.read_text())
    assert len(answers) >= 13
    for status, body in answers:
        message = re.search(r'"message":"([^"]+)"', body)[1]
        assert re.search(rf"\| {status}[^|\n]*\| `{re.escape(message)}` \|", readme), (status, message)
