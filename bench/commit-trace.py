#!/usr/bin/env python3
"""Where a durable publish's time goes in the workers' write path: reads `perf script -F
pid,tid,time,event` output of the syscall tracepoints bench/flow.sh records with TRACE=1
(fdatasync, flock, pwrite64, accept and write, enter and exit) and prints, for the log the
workers commit to:
  - fdatasync: count, rate, and its duration (median, mean, p90, p99);
  - whether two syncs were ever in flight at once, and how often the next one was the other
    worker's;
  - each turn of the deployment-wide lock: from one holder's sync to the next holder having the
    lock, and from having it to starting the sync (batch, catch-up, decisions, pwrite);
  - records per sync (responses written by that worker between its syncs), split by whether the
    leader had to wait for the lock or found it free;
  - how many of the committing worker's threads were inside a request, or in accept, at its pwrite.
Every request of the traced window must be a durable publish (part 2's first round)."""
import bisect, collections, re, statistics, sys

ev = []
for line in sys.stdin:
    m = re.match(r'\s*(\d+)/(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):', line)
    if m:
        ev.append((float(m[3]), int(m[1]), int(m[2]), m[4], m[5]))
if not ev:
    sys.exit("no tracepoint events")
span = ev[-1][0] - ev[0][0]

def us(xs):
    xs = sorted(xs)
    n = len(xs)
    return f"median {xs[n // 2] * 1e6:.0f} µs, mean {sum(xs) / n * 1e6:.0f}, p90 {xs[int(n * .9)] * 1e6:.0f}, p99 {xs[int(n * .99)] * 1e6:.0f}"

opened = {}
syncs = []                 # (pid, start, end)
for t, pid, tid, kind, name in ev:
    if name != 'fdatasync':
        continue
    if kind == 'enter':
        opened[tid] = t
    elif tid in opened:
        syncs.append((pid, opened.pop(tid), t))
syncs.sort(key=lambda s: s[1])
if len(syncs) < 2:
    sys.exit("fewer than two fdatasync calls traced")
print(f"fdatasync: {len(syncs)} in {span:.2f} s ({len(syncs) / span:.0f}/s); {us([e - s for _, s, e in syncs])}")
pairs = list(zip(syncs, syncs[1:]))
print(f"  two in flight at once: {sum(1 for a, b in pairs if b[1] < a[2])} of {len(pairs)} consecutive pairs; "
      f"the next sync was the other worker's {sum(1 for a, b in pairs if a[0] != b[0])} times")

# The lock's turns. A thread's flock right after its own fdatasync is the unlock; any other is a lock.
after_sync, lock_enter, acquired = set(), {}, {}
last_unlock_enter, last_sync_exit = None, None
handoff, prep, waited_for = [], [], []
commits = collections.defaultdict(list)      # pid -> [(sync exit, waited for the lock?)]
waited_now = {}
for t, pid, tid, kind, name in ev:
    if name == 'fdatasync':
        if kind == 'enter' and tid in acquired:
            prep.append(t - acquired.pop(tid))
        elif kind == 'exit':
            after_sync.add(tid)
            last_sync_exit = t
            commits[pid].append((t, waited_now.get(tid)))
    if name != 'flock':
        continue
    if kind == 'enter':
        if tid in after_sync:
            after_sync.discard(tid)
            last_unlock_enter = t
        else:
            lock_enter[tid] = t
    elif tid in lock_enter:
        start = lock_enter.pop(tid)
        acquired[tid] = t
        if last_sync_exit is not None and t > last_sync_exit:
            handoff.append(t - last_sync_exit)
        waited = None if last_unlock_enter is None else start < last_unlock_enter
        waited_now[tid] = waited
        if waited:
            waited_for.append(t - start)
print(f"lock: from a sync's end to the next holder having the lock: {us(handoff)}")
print(f"      from having the lock to starting the sync: {us(prep)}")
if waited_for:
    print(f"      the next leader was already waiting in {len(waited_for)} of {len(prep)} turns; it waited {us(waited_for)}")

writes = collections.defaultdict(list)
for t, pid, tid, kind, name in ev:
    if name == 'write' and kind == 'enter':
        writes[pid].append(t)
sizes = {True: [], False: []}
for pid, cs in commits.items():
    w = writes[pid]
    for (t1, waited), (t2, _) in zip(cs, cs[1:]):
        if waited is not None:
            sizes[waited].append(bisect.bisect_left(w, t2) - bisect.bisect_left(w, t1))
everything = sizes[True] + sizes[False]
if everything:
    print(f"records per sync: mean {statistics.mean(everything):.2f}")
    for waited, label in ((True, "the leader waited for the lock"), (False, "the leader found it free")):
        v = sizes[waited]
        if v:
            dist = ", ".join(f"{k}: {n}" for k, n in sorted(collections.Counter(v).items()))
            print(f"  {label}: {len(v)} syncs, mean {statistics.mean(v):.2f} ({dist})")

inreq, inaccept = collections.defaultdict(set), collections.defaultdict(set)
busy, idle = [], []
for t, pid, tid, kind, name in ev:
    if name == 'accept':
        (inaccept if kind == 'enter' else inreq)[pid].add(tid)
        (inreq if kind == 'enter' else inaccept)[pid].discard(tid)
    elif name == 'write' and kind == 'enter':
        inreq[pid].discard(tid)
    elif name == 'pwrite64' and kind == 'enter':
        busy.append(len(inreq[pid]))
        idle.append(len(inaccept[pid]))
if busy:
    print(f"at its pwrite, the committing worker had {statistics.mean(busy):.1f} threads inside a request "
          f"and {statistics.mean(idle):.1f} in accept")
