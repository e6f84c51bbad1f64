"""A throwaway PostgreSQL 15 (Debian's) for the tests: initdb in a fresh directory, pg_ctl start on
a free port bound to 127.0.0.1 (or to `listen`, an address of this machine) with its unix socket in
that directory, trust authentication (from the listen address's own networks too).

initdb refuses to run as root, so as root the server runs as the `postgres` user (FIELD-NOTES).
Also a command line for deploy/test.sh, which hands the Swift tests a server:

    python3 Tests/e2e/pg_server.py start DIR    # prints the base URL, postgresql://postgres@127.0.0.1:PORT
    python3 Tests/e2e/pg_server.py stop DIR
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid


def _bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    return os.path.dirname(found[-1])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, directory=None, port=None, listen="127.0.0.1"):
        # Not under pytest's tmp_path: its parents are root's and mode 0700, which `postgres` cannot cross.
        self.base = directory or tempfile.mkdtemp(prefix="ryze-pg-")
        self.datadir = os.path.join(self.base, "pgdata")
        self.port = port or _free_port()
        self.listen = listen
        self.bin = _bindir()
        self.as_root = os.geteuid() == 0

    @property
    def url(self):
        """Without a database name: callers append /DB (see `database`)."""
        return f"postgresql://postgres@{self.listen}:{self.port}"

    def _run(self, argv, check=True):
        if self.as_root:
            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in argv)]
        else:
            cmd = argv
        return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)

    def start(self):
        os.makedirs(self.base, exist_ok=True)
        os.chmod(self.base, 0o755)
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")
        if not os.path.exists(os.path.join(self.datadir, "PG_VERSION")):
            self._run([f"{self.bin}/initdb", "-D", self.datadir, "-A", "trust", "-U", "postgres", "--no-sync"])
            if self.listen != "127.0.0.1":
                # initdb trusts loopback only; `samenet`: the subnets of this machine's addresses.
                with open(os.path.join(self.datadir, "pg_hba.conf"), "a") as f:
                    f.write("host all all samenet trust\n")
        self.resume()
        return self

    def resume(self):
        """Starts the server (again, after `pause`) and waits until it accepts connections."""
        opts = f"-p {self.port} -k {self.base} -c listen_addresses={self.listen} -c fsync=off -c max_connections=200"
        r = self._run([f"{self.bin}/pg_ctl", "-D", self.datadir, "-o", opts, "-l", os.path.join(self.base, "server.log"),
                       "-w", "start"], check=False)
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed: " + r.stdout + self.log_tail())

    def pause(self):
        """Stops the server at once (fast: open sessions are ended); the data stays for `resume`."""
        self._run([f"{self.bin}/pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "stop"], check=False)

    def pids(self):
        """The postmaster and its children (backends, background workers)."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            main = int(f.readline())
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(main)], stdout=subprocess.PIPE, text=True).stdout
        return [main] + [int(p) for p in out.split()]

    def freeze(self):
        """SIGSTOP to every process of this server: connections stay open and nothing answers, as
        when the network to it goes silent. `thaw` undoes it."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in self.pids():
            os.kill(pid, signal.SIGCONT)

    def stop(self):
        self.pause()
        shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, sql, db="postgres"):
        return subprocess.run([f"{self.bin}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               f"{self.url}/{db}", "-c", sql],
                              check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout.strip()

    def dump(self, db):
        """The database's rows as pg_dump writes them (bytea in hex), for tests that look for
        what must never be stored in clear."""
        return subprocess.run([f"{self.bin}/pg_dump", "--data-only", f"{self.url}/{db}"],
                              check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout

    def database(self, name=None):
        """Creates a fresh database and returns its URL."""
        name = name or "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        return f"{self.url}/{name}"

    def log_tail(self):
        try:
            with open(os.path.join(self.base, "server.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""


def _quote(a):
    return "'" + a.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: pg_server.py start|stop DIR")
    d = os.path.abspath(sys.argv[2])
    portfile = os.path.join(d, "port")
    if sys.argv[1] == "start":
        s = PgServer(d).start()
        with open(portfile, "w") as f:
            f.write(str(s.port))
        print(s.url)
    else:
        with open(portfile) as f:
            PgServer(d, int(f.read())).stop()
