"""Publish-to-frame latency through the real stream (used by bench/flow.sh).

    python3 bench/flow_latency.py PORT PUBLISHER_TOKEN INSTANCES_FILE RATE SECONDS PER_INSTANCE PROCS CONNS

INSTANCES_FILE holds one `name<TAB>instance-token` a line. PROCS subscriber processes hold
PER_INSTANCE WebSocket connections per instance between them (the real GET /ws/:instance through
nginx: the gate, X-Accel-Redirect, nchan); once all are open, CONNS keep-alive HTTP/1.1
connections publish RATE events a second in all for SECONDS seconds, round-robin over the
instances, each on a fixed schedule (event i is due at start + i/RATE), with its send time in
`data.t`. Each subscriber notes receive time - send time. Prints one line:
`rate=… sent=… accepted=… expected=… frames=… p50=… p99=… max=… (ms) lag_p99=…` where lag is how
late the publisher itself sent against the schedule (the harness's own share of the delay)."""
import asyncio
import multiprocessing as mp
import re
import socket
import sys
import time

T_RE = re.compile(rb'"t":([0-9.]+)')


def subscriber(port, targets, ready, stop, out):
    import websockets

    lat = []

    async def reader(ws):
        try:
            async for msg in ws:
                now = time.time()
                m = T_RE.search(msg if isinstance(msg, bytes) else msg.encode())
                if m:
                    lat.append(now - float(m.group(1)))
        except websockets.ConnectionClosed:
            pass

    async def main():
        conns = []
        for k in range(0, len(targets), 50):   # at most 50 handshakes at once
            conns += await asyncio.gather(*(
                websockets.connect(f"ws://127.0.0.1:{port}/ws/{name}", additional_headers={"token": token},
                                   compression=None, ping_interval=None, max_queue=None, open_timeout=60)
                for name, token in targets[k:k + 50]))
        tasks = [asyncio.create_task(reader(ws)) for ws in conns]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()

    asyncio.run(main())
    out.send(lat)


def parse_response(buf):
    """(status, rest, keep) once one whole response is in buf, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length, keep = 0, True
    for line in head[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v)
        elif k == "connection" and v.strip().lower() == "close":
            keep = False
    if len(buf) < end + 4 + length:
        return None
    return status, buf[end + 4 + length:], keep


async def publish(port, pub, names, rate, seconds, conns):
    n_total = int(rate * seconds)
    counter = iter(range(n_total))
    statuses = {}
    lags = []
    start = time.time() + 0.2

    async def conn_loop():
        reader = writer = None
        for i in counter:
            due = start + i / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t = time.time()
            lags.append(t - due)
            name = names[i % len(names)]
            body = b'{"event":"message.exchange","data":{"n":%d,"t":%.6f}}' % (i, t)
            writer.write(b"POST /api/events/publish/%s HTTP/1.1\r\nHost: bench\r\ntoken: %s\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (name.encode(), pub.encode(), len(body), body))
            buf = b""
            while True:
                r = parse_response(buf)
                if r:
                    break
                chunk = await reader.read(65536)
                if not chunk:
                    raise RuntimeError("connection closed mid-response")
                buf += chunk
            status, _, keep = r
            statuses[status] = statuses.get(status, 0) + 1
            if not keep:
                writer.close()
                reader = writer = None
        if writer:
            writer.close()

    await asyncio.gather(*(conn_loop() for _ in range(conns)))
    elapsed = time.time() - start
    return n_total, statuses, elapsed, lags


def pct(xs, p):
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    port, pub, inst_file, rate, seconds, per_instance, procs, conns = sys.argv[1:9]
    rate, seconds, per_instance, procs, conns = float(rate), float(seconds), int(per_instance), int(procs), int(conns)
    instances = [line.split("\t") for line in open(inst_file).read().split("\n") if line]
    targets = [(name, token) for name, token in instances for _ in range(per_instance)]
    ready, stop = [], mp.Event()
    children = []
    for k in range(procs):
        ev = mp.Event()
        a, b = mp.Pipe(False)
        p = mp.Process(target=subscriber, args=(port, targets[k::procs], ev, stop, b), daemon=True)
        p.start()
        ready.append(ev)
        children.append((p, a))
    t0 = time.time()
    for ev in ready:
        if not ev.wait(120):
            sys.exit("subscribers did not all connect within 120 s")
    print(f"  {len(targets)} WebSocket subscribers open in {time.time() - t0:.1f} s", file=sys.stderr)
    time.sleep(1)
    n, statuses, elapsed, lags = asyncio.run(publish(port, pub, [i[0] for i in instances], rate, seconds, conns))
    time.sleep(2)   # the last frames
    stop.set()
    lat = []
    for p, a in children:
        lat += a.recv()
        p.join(10)
    lat.sort()
    lags.sort()
    accepted = statuses.get(202, 0)
    print(f"rate={n / elapsed:.0f} sent={n} accepted={accepted} statuses={','.join(f'{k}:{v}' for k, v in sorted(statuses.items()))} "
          f"expected={accepted * per_instance} frames={len(lat)} p50={pct(lat, 0.5) * 1000:.2f} p99={pct(lat, 0.99) * 1000:.2f} "
          f"max={(lat[-1] if lat else float('nan')) * 1000:.2f} lag_p99={pct(lags, 0.99) * 1000:.2f}")


if __name__ == "__main__":
    main()
