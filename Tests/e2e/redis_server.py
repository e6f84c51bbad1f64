"""A throwaway redis-server on loopback (or on `host`, an address of this machine) for the
several-hosts tests: no persistence, daemonized with a pid file, stopped (or frozen) by that pid.
deploy/install-deps.sh installs redis-server."""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile

from harness import free_port, wait_for


class RedisServer:
    def __init__(self, port=None, databases=16, host="127.0.0.1"):
        self.port = port or free_port()
        self.host = host
        self.databases = databases
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="ryze-redis-"))
        self.pidfile = self.dir / "redis.pid"
        self.url = f"redis://{host}:{self.port}"

    def start(self):
        # Protected mode refuses every client but loopback's when no password is set.
        protected = "yes" if self.host == "127.0.0.1" else "no"
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", self.host, "--protected-mode", protected,
                        "--save", "", "--appendonly", "no",
                        "--databases", str(self.databases), "--daemonize", "yes", "--pidfile", str(self.pidfile), "--dir", str(self.dir),
                        "--logfile", str(self.dir / "redis.log")], check=True, stdout=subprocess.DEVNULL)
        wait_for(self.accepts, "redis-server to accept", timeout=10, interval=0.02)
        return self

    @property
    def pid(self):
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        """Killed outright, as a crash or a lost host would leave it; waits until the port is closed."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGCONT)   # in case a test froze it
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(lambda: not self.accepts(), "redis-server to stop", timeout=10, interval=0.02)
        self.pidfile.unlink(missing_ok=True)

    def freeze(self):
        """Still accepting connections (the kernel does), answering nothing: a hung server."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self):
        os.kill(self.pid, signal.SIGCONT)

    def command(self, *args):
        out = subprocess.run(["redis-cli", "-h", self.host, "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def accepts(self):
        try:
            socket.create_connection((self.host, self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
