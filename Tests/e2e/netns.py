"""Hosts as real network peers for the end-to-end tests (test_netns_hosts.py): Linux network
namespaces joined to the root namespace by veth pairs, made and removed with iproute2's `ip`
(root only).

Each host gets two links:

- a *service link*: its end in the namespace (`svc`) and the other end a port of a bridge in the
  root namespace, whose address (`servers`) is where PostgreSQL and Redis listen;
- a *client link*: a point-to-point pair (`cli`) over which the test reaches the host's nginx.

So `cut(host)` (the service link's root end down) leaves the host without its servers, silently
(packets are dropped, no reset or refusal comes back), while the test still talks to it.

Every name carries the pid of the run, and the addresses are a 10.x.y.0/24 no interface of this
machine uses, so a crashed run's leftovers do not get in the next one's way; `sweep()` removes
the names left by runs whose process is gone."""
import os
import re
import signal
import subprocess

NS_PREFIX = "ryze-e2e-"   # + pid + "-" + host
LINK = re.compile(r"^rz[bsc](\d+)[a-z]?$")   # root namespace ends: bridge, service, client
NETNS = re.compile(r"^" + NS_PREFIX + r"(\d+)-[a-z]$")


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def works():
    """Root, iproute2, and a network namespace can be made here (a container may forbid it)."""
    if os.geteuid() != 0:
        return False
    probe = f"{NS_PREFIX}probe{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return False
    ip("netns", "del", probe, check=False)
    return True


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep():
    """Deletes the namespaces and links of earlier runs whose process has exited. Processes still
    inside such a namespace are left alone (not this run's): the namespace outlives its name."""
    for line in ip("netns", "list").splitlines():
        m = NETNS.match(line.split()[0]) if line.strip() else None
        if m and not _alive(int(m.group(1))):
            ip("netns", "del", line.split()[0], check=False)
    for line in ip("-o", "link").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        m = LINK.match(name)
        if m and not _alive(int(m.group(1))):
            ip("link", "del", name, check=False)


def _free_prefix(seed):
    """A 10.x.y prefix that no address or route of the root namespace is in."""
    taken = ip("-4", "-o", "addr") + ip("-4", "route")
    for i in range(512):
        n = (seed + i) % 25600
        prefix = f"10.{100 + n // 256}.{n % 256}"
        if f" {prefix}." not in taken and f"\n{prefix}." not in "\n" + taken:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 for the test network")


class Network:
    def __init__(self, hosts=("a", "b")):
        tag = os.getpid()
        p = _free_prefix(tag)
        self.bridge = f"rzb{tag}"
        self.servers = f"{p}.1"              # on the bridge: PostgreSQL and Redis listen here
        self.ns, self.address, self.svc_address, self.svc_link, self.cli_link = {}, {}, {}, {}, {}
        for i, h in enumerate(hosts):
            self.ns[h] = f"{NS_PREFIX}{tag}-{h}"
            self.svc_address[h] = f"{p}.{2 + i}"      # the host's end of its service link, /26
            self.address[h] = f"{p}.{66 + 4 * i}"     # the host's end of its client link, /30: nginx
            self.svc_link[h] = f"rzs{tag}{h}"         # root namespace ends (15 characters at most)
            self.cli_link[h] = f"rzc{tag}{h}"
        self.prefix = p

    def up(self):
        """Makes everything; on a failure removes what was made, then raises."""
        try:
            ip("link", "add", self.bridge, "type", "bridge", "forward_delay", "0")
            ip("addr", "add", f"{self.servers}/26", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for i, (h, ns) in enumerate(self.ns.items()):
                ip("netns", "add", ns)
                ip("-n", ns, "link", "set", "lo", "up")
                ip("link", "add", self.svc_link[h], "type", "veth", "peer", "name", "svc", "netns", ns)
                ip("link", "set", self.svc_link[h], "master", self.bridge)
                ip("link", "set", self.svc_link[h], "up")
                ip("-n", ns, "addr", "add", f"{self.svc_address[h]}/26", "dev", "svc")
                ip("-n", ns, "link", "set", "svc", "up")
                ip("link", "add", self.cli_link[h], "type", "veth", "peer", "name", "cli", "netns", ns)
                ip("addr", "add", f"{self.prefix}.{65 + 4 * i}/30", "dev", self.cli_link[h])
                ip("link", "set", self.cli_link[h], "up")
                ip("-n", ns, "addr", "add", f"{self.address[h]}/30", "dev", "cli")
                ip("-n", ns, "link", "set", "cli", "up")
        except BaseException:
            self.down()
            raise
        return self

    def cut(self, host):
        ip("link", "set", self.svc_link[host], "down")

    def heal(self, host):
        ip("link", "set", self.svc_link[host], "up")

    def pids(self, host):
        """Processes in the host's namespace (all of them this run's: it made the namespace)."""
        return [int(p) for p in ip("netns", "pids", self.ns[host], check=False).split()]

    def down(self):
        """Removes everything this run made, whatever state it is in; never raises for what is
        already gone. A process the tests left in a namespace is killed by its pid first, or the
        namespace would outlive its name."""
        for h, ns in self.ns.items():
            for pid in self.pids(h):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            ip("netns", "del", ns, check=False)   # takes its veth ends, and so their peers, along
        for name in [*self.svc_link.values(), *self.cli_link.values(), self.bridge]:
            ip("link", "del", name, check=False)

    def leftovers(self):
        """What of this run is still there (for the test that teardown removed everything)."""
        names = set(self.ns.values()) | set(self.svc_link.values()) | set(self.cli_link.values()) | {self.bridge}
        present = {l.split()[0] for l in ip("netns", "list").splitlines() if l.strip()}
        present |= {l.split(":")[1].strip().split("@")[0] for l in ip("-o", "link").splitlines()}
        return names & present
