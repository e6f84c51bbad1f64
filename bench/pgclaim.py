#!/usr/bin/env python3
"""The PostgreSQL deliverer's claim statement, before and after schema migration 4, side by side
in one run:  python3 bench/pgclaim.py   (needs only Debian's postgresql; no build)

Starts a throwaway PostgreSQL (Tests/e2e/pg_server.py) with two databases filled alike: `before`
at schema version 3 running the claim that walked the pending rows in `due` order, `after` at the
latest version running what `PostgresDeliverySource.claim` runs now: `claimPerLabel` (per label)
when some label is held at its bound, else `claimInDueOrder` (both read from the sources, so the
figures follow them). Each scenario times the statement with EXPLAIN ANALYZE inside a
transaction rolled back (so every run claims the same rows), ROUNDS times alternating, and prints
the median planning + execution time in ms:
  stuck   200,000 due rows of one label (the deliverer holds it at its bound), then 1,000 of a
          healthy label: the claim must reach the healthy rows;
  stuck+labels  the same with LABELS (5,000) more labels of 4 due rows each behind the stuck
          backlog: the per-label claim's cost grows with the labels that have pending rows;
  labels  LABELS labels with 4 due rows each, nothing held;
  small   20 labels with 50 due rows each, nothing held: a healthy queue.
Claims of 64 (room) with 8 per label (perLabel), envelopes of 500 bytes. Also times the migration
(CREATE INDEX) on the `stuck` table. Appends the results to bench/out/pgclaim.txt.
"""
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
from pg_server import PgServer  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "7"))
LABELS = int(os.environ.get("LABELS", "5000"))
ROOM, PER_LABEL = 64, 8

# The claim as migration 3 shipped it ($3: the labels held at their bound; $4: room).
OLD = """UPDATE ryze_deliveries d SET lease_holder = $1, lease_until = now() + $2::int8 * interval '1 millisecond'
WHERE d.id IN (
    SELECT id FROM ryze_deliveries
    WHERE NOT dead AND due <= now() AND (lease_until IS NULL OR lease_until < now())
      AND NOT ((account || chr(31) || instance || chr(31) || label) = ANY($3::text[]))
    ORDER BY due LIMIT $4::int8
    FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.event_id, d.account, d.instance, d.label, d.event::int8, d.envelope, d.attempts::int8, d.last_error"""


def migrations():
    text = (ROOT / "Sources/RyzePostgres/Schema.swift").read_text()
    return [(int(v), sql) for v, sql in re.findall(r'Migration\(version: (\d+), name: ".*?", sql: """\n(.*?)"""', text, re.S)]


def statement(name):
    text = (ROOT / "Sources/RyzePostgres/PostgresDeliverySource.swift").read_text()
    return re.search(r'static let ' + name + r' = """\n(.*?)"""', text, re.S).group(1)


def psql(pg, db, sql):
    return subprocess.run([f"{pg.bin}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", f"{pg.url}/{db}"],
                          input=sql, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout


def fill(pg, db, rows):
    """rows: (label, count, seconds ago the first is due)."""
    sql = ["TRUNCATE ryze_deliveries;"]
    for label, count, ago in rows:
        sql.append(f"""INSERT INTO ryze_deliveries (event_id, account, instance, label, event, envelope, due)
            SELECT '{label}-' || g, 'acme', 'shop', '{label}', 1, convert_to(repeat('x', 500), 'UTF8'),
                   now() - interval '{ago} seconds' + g * interval '1 millisecond'
            FROM generate_series(1, {count}) g;""")
    sql.append("VACUUM ANALYZE ryze_deliveries;")
    psql(pg, db, "\n".join(sql))


def timed(pg, db, statement, types, args):
    out = psql(pg, db, f"PREPARE claim({types}) AS {statement};\nBEGIN;\n"
                       f"EXPLAIN (ANALYZE) EXECUTE claim({args});\nROLLBACK;\n")
    planning = float(re.search(r"Planning Time: ([\d.]+)", out).group(1))
    execution = float(re.search(r"Execution Time: ([\d.]+)", out).group(1))
    claimed = int(re.search(r"Update on ryze_deliveries d .*?actual time=[\d.]+\.\.[\d.]+ rows=(\d+)", out).group(1))
    return planning + execution, claimed


def main():
    pg = PgServer().start()
    lines = []
    try:
        per_label, in_due_order = statement("claimPerLabel"), statement("claimInDueOrder")
        for db, top in (("before", 3), ("after", 99)):
            psql(pg, "postgres", f"CREATE DATABASE {db}")
            psql(pg, db, "\n".join(sql for v, sql in migrations() if v <= top))
        key = lambda label: f"E'acme\\x1fshop\\x1f{label}'"  # noqa: E731
        scenarios = [
            ("stuck", [("stuck", 200_000, 7200), ("healthy", 1_000, 60)], {"stuck": PER_LABEL}),
            ("stuck+labels", [("stuck", 200_000, 7200)] + [(f"l{i}", 4, 3600 - i * 0.5) for i in range(LABELS)],
             {"stuck": PER_LABEL}),
            ("labels", [(f"l{i}", 4, 3600 - i * 0.5) for i in range(LABELS)], {}),
            ("small", [(f"l{i}", 50, 600 - i) for i in range(20)], {}),
        ]
        for name, rows, held in scenarios:
            for db in ("before", "after"):
                fill(pg, db, rows)
            busy = [key(l) for l, n in held.items() if n >= PER_LABEL]
            old_args = f"'me', 40000, ARRAY[{','.join(busy)}]::text[], {ROOM}"
            new_args = (f"'me', 40000, ARRAY[{','.join(key(l) for l in held)}]::text[], "
                        f"ARRAY[{','.join(str(n) for n in held.values())}]::int8[], {ROOM}, {PER_LABEL}")
            times = {"before": [], "after": []}
            claimed = {}
            for r in range(ROUNDS):
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for db in order:
                    if db == "before":
                        t, n = timed(pg, db, OLD, "text, int8, text[], int8", old_args)
                    elif busy:
                        t, n = timed(pg, db, per_label, "text, int8, text[], int8[], int8, int8", new_args)
                    else:
                        t, n = timed(pg, db, in_due_order, "text, int8, int8", f"'me', 40000, {ROOM}")
                    times[db].append(t)
                    claimed[db] = n
            line = (f"{name:12s} rows={sum(n for _, n, _ in rows):>7,} labels={len(rows):>5,}  "
                    f"before {statistics.median(times['before']):8.2f} ms (claimed {claimed['before']})  "
                    f"after {statistics.median(times['after']):7.2f} ms (claimed {claimed['after']})")
            print(line, flush=True)
            lines.append(line)
        # Migration 4 on a database at version 3 holding the `stuck` backlog.
        fill(pg, "before", scenarios[0][1])
        four = "\n".join(sql for v, sql in migrations() if v == 4)
        started = time.monotonic()
        psql(pg, "before", f"BEGIN;\n{four}\nROLLBACK;")
        line = f"migration 4 on {201_000:,} pending rows: {1000 * (time.monotonic() - started):.0f} ms"
        print(line)
        lines.append(line)
    finally:
        pg.stop()
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    with open(out / "pgclaim.txt", "a") as f:
        f.write(time.strftime("%Y-%m-%d %H:%M:%S UTC ", time.gmtime()) + f"ROUNDS={ROUNDS}\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
