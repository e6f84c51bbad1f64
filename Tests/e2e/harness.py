"""A real deployment for end-to-end tests: the ryze-events binary as spawn-fcgi (or multiwatch)
worker processes behind a real nginx on a free loopback port, driven over HTTP."""
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx-local.conf.template"


def binary():
    b = os.environ.get("RYZE_BIN")
    if b:
        return b
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip() + "/ryze-events"


BIN = binary()

# Where every Deployment made from now on keeps its state: None for one host (the data directory,
# its rate table, nchan in memory), or a shared_backend.SharedBackend for the PostgreSQL + Redis
# pass (conftest's `backend` fixture sets it; RYZE_E2E_BACKEND chooses). Tests read it through
# Deployment.shared rather than here.
BACKEND = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, what, timeout=30, interval=0.05):
    """Polls `cond` until it holds; fails the test with `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def message(self):
        j = self.json or {}
        if j.get("success") is False:
            return j["error"]["message"]
        return j.get("message")

    def __repr__(self):
        return f"<{self.status} {self.body[:200]!r}>"


class Deployment:
    def __init__(self, workers=2, threads=4, args=(), supervisor="spawn-fcgi", nginx_workers=2, multiwatch_args=(),
                 nginx_server="", ws_ping_interval=2, nchan_redis=None, secret_key=None, host="127.0.0.1", netns=None):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="ryze-e2e-"))
        os.chmod(self.dir, 0o755)   # nginx's workers (nobody) must reach the socket
        self.data = self.dir / "data"
        self.sock = self.dir / "ryze.sock"
        self.log = self.dir / "worker.log"
        self.port = free_port()
        self.workers = workers
        self.threads = threads
        self.args = list(args)
        self.supervisor = supervisor
        self.nginx_workers = nginx_workers
        self.multiwatch_args = list(multiwatch_args)
        self.nginx_server = nginx_server   # extra directives for the server block
        self.fanout = self.dir / "fanout.sock"   # nchan's publisher socket, nginx's; the workers publish to it
        self.ws_ping_interval = ws_ping_interval
        self.nchan_redis = nchan_redis   # redis://HOST:PORT: nchan's Redis mode (several hosts)
        # A host of its own on the network (test_netns_hosts.py): nginx listens on `host`, an
        # address of the network namespace `netns`, where nginx, the workers and the CLI run.
        self.host = host
        self.netns = netns
        self.run_in = ["ip", "netns", "exec", netns] if netns else []
        self.nginx = None
        self.multiwatch = None
        # The PostgreSQL + Redis pass: a database, a Redis database and an nchan namespace of
        # this deployment's own; every process gets --store, serve --rate-limit-store too. A test
        # that brings its own nchan Redis is a several-hosts test and keeps to what it asked for.
        self.shared = BACKEND.slice() if BACKEND is not None and nchan_redis is None else None
        if self.shared:
            self.nchan_redis = self.shared.nchan_redis
            secret_key = secret_key or os.urandom(32)
        if secret_key is not None:
            # With --store no host makes the deployment key on first use (README, multi-host):
            # the operator gives every host the same one, as here.
            self.data.mkdir(mode=0o700)
            fd = os.open(self.data / "secret.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, secret_key)
            os.close(fd)

    @property
    def store_args(self):
        """`--store URL` in the PostgreSQL + Redis pass, else nothing: for any subcommand."""
        return ["--store", self.shared.store] if self.shared else []

    # --- processes -------------------------------------------------------------------------
    def serve_command(self):
        shared = ["--rate-limit-store", self.shared.rate_limit_store] if self.shared else []
        return [BIN, "serve", "--data-dir", str(self.data), "--threads", str(self.threads),
                "--log-file", str(self.log), "--fanout-socket", str(self.fanout), *self.store_args, *shared, *self.args]

    def start(self):
        self.start_workers()
        self.start_nginx()
        return self

    def socket_in_use(self):
        if not self.sock.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.2)
                s.connect(str(self.sock))
            return True
        except OSError:
            return False

    def start_workers(self):
        # A worker that pgrep no longer lists may still hold the listening socket for a moment
        # while it exits; spawn-fcgi refuses a socket something still accepts on.
        self.wait_for(lambda: not self.socket_in_use(), "the old workers to let go of the socket")
        if self.supervisor == "multiwatch":
            self.multiwatch = subprocess.Popen(
                [*self.run_in, "spawn-fcgi", "-n", "-s", str(self.sock), "-M", "0666", "--",
                 shutil.which("multiwatch"), "-f", str(self.workers), *self.multiwatch_args, "--", *self.serve_command()],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            subprocess.run([*self.run_in, "spawn-fcgi", "-s", str(self.sock), "-M", "0666", "-F", str(self.workers), "--",
                            *self.serve_command()], check=True, stdout=subprocess.DEVNULL)
        self.wait_for(lambda: len(self.worker_pids()) == self.workers and self.sock.exists(), "workers to start")

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-f", f"^{BIN} serve --data-dir {self.data} "], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop_workers(self, sig=signal.SIGTERM, timeout=10):
        if self.multiwatch:
            self.multiwatch.send_signal(signal.SIGTERM)
            self.multiwatch.wait(timeout)
            self.multiwatch = None
        for pid in self.worker_pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        self.wait_for(lambda: not self.worker_pids(), "workers to stop", timeout)

    def restart_workers(self):
        self.stop_workers()
        self.start_workers()

    def start_nginx(self):
        conf = TEMPLATE.read_text()
        for k, v in {"@RUN_DIR@": str(self.dir), "@PORT@": str(self.port), "@SOCKET@": str(self.sock),
                     "@WORKERS@": str(self.nginx_workers), "@ROOT@": str(ROOT), "@FANOUT_SOCKET@": str(self.fanout),
                     "@WS_PING_INTERVAL@": str(self.ws_ping_interval),
                     "@NCHAN_REDIS@": "" if self.nchan_redis else "# ",
                     "@NCHAN_REDIS_URL@": self.nchan_redis or "redis://127.0.0.1:6379"}.items():
            conf = conf.replace(k, v)
        listen = "listen 127.0.0.1:@PORT@;".replace("@PORT@", str(self.port))
        assert listen in conf
        conf = conf.replace(listen, f"listen {self.host}:{self.port};", 1)
        conf = conf.replace("server_name localhost;", "server_name localhost;\n        " + self.nginx_server, 1)
        if self.shared:
            nostore = "nchan_redis_storage_mode nostore;"
            assert nostore in conf
            conf = conf.replace(nostore, f"{nostore} nchan_redis_namespace {self.shared.nchan_namespace};", 1)
        (self.dir / "nginx.conf").write_text(conf)
        # `ip netns exec` execs nginx itself: the Popen's pid is nginx's master.
        self.nginx = subprocess.Popen([*self.run_in, "nginx", "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir), "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def up():
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        self.wait_for(up, "nginx to listen")

    def close(self):
        if self.nginx:
            self.nginx.terminate()
            self.nginx.wait(10)
        try:
            self.stop_workers()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.shared:
                self.shared.release()

    wait_for = staticmethod(wait_for)

    # --- CLI and HTTP ----------------------------------------------------------------------
    def cli(self, *args, check=True):
        r = subprocess.run([*self.run_in, BIN, *args, "--data-dir", str(self.data), *self.store_args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"{args} failed: {r.stderr}")
        return r

    def stored_state(self):
        """What the deployment's store holds, as text: `log dump` of the data directory's log, or
        in the PostgreSQL pass the database's rows (pg_dump). For checks that a token or a
        secret is never stored in clear."""
        if self.shared:
            return self.shared.dump().decode(errors="replace")
        return self.cli("log", "dump").stdout

    def account(self, name, quota=None, token=None):
        args = ["account", "create", "--name", name]
        if quota is not None:
            args += ["--instance-quota", str(quota)]
        if token is not None:
            args += ["--token", token]
        out = self.cli(*args).stdout
        assert out.count("\n") == 1, out
        return out.strip()

    def request(self, method, path, token=None, headers=None, body=None, auth=None, source_address=None):
        """One request on a connection of its own; `source_address` binds the client side to that
        local address (on Linux any of 127/8 is), so a test can play many clients."""
        h = dict(headers or {})
        if token is not None:
            h["token"] = token
        if auth is not None:
            h["Authorization"] = auth
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30,
                                          source_address=(source_address, 0) if source_address else None)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def create_instance(self, account_token, name, **fields):
        r = self.request("POST", "/api/instance/new", token=account_token, body={"name": name, **fields})
        assert r.status == 201, r
        return r.json["instance"]["token"]
