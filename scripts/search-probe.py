#!/usr/bin/env python3
"""Times the Feishu keyword search for many queries, one at a time, against a running Roster
(on PostgreSQL or SQLite), and prints the distribution and the slowest queries.

The benchmark's search phase repeats 56 queries at a fixed rate; this probe takes the same
kinds of queries (the middle of an e-mail's local part, digits from a mobile, a given name,
a full name, full pinyin and its first half) from 100 users spread over the table, so that
a plan that suits the benchmark's few queries but not others shows. Each query is sent
three times and its median kept.

Usage, with a database kept by `ROSTER_BENCH_KEEP=1 roster-bench --phases pg …` and a server
started on it (`roster --data-dir D --database-url URL serve --listen 127.0.0.1:18080`,
after `roster … app create --tenant 1` and a tenant_access_token for that app):

    python3 scripts/search-probe.py --db roster_bench_import_NNN --token t-… [--users 100]

or, for a server on SQLite, `--sqlite DATA_DIR/roster.db` instead of `--db` (the users are
read from the file; the server may keep running).
"""

import argparse
import http.client
import json
import statistics
import sqlite3
import subprocess
import time
import urllib.parse


def queries(db: str | None, sqlite: str | None, users: int) -> list[tuple[str, str]]:
    pick = f"SELECT doc FROM users WHERE tenant_id = 1 AND id % 9973 = 17 LIMIT {users}"
    if sqlite:
        conn = sqlite3.connect(f"file:{sqlite}?mode=ro", uri=True)
        docs = [row[0] for row in conn.execute(pick)]
    else:
        docs = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc", pick],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()
    out = []
    for line in docs:
        d = json.loads(line)
        local = d["email"].split("@")[0]
        s = len(local) // 3
        en = d["en_name"].lower().split()
        py = en[1] + en[0] if len(en) == 2 else en[0]
        out += [
            ("substring", local[s:s + 6]),
            ("substring", d["mobile"][6:12]),
            ("cjk", d["name"][1:]),
            ("cjk", d["name"]),
            ("pinyin", py),
            ("pinyin", py[:max(len(py) // 2, 2)]),
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="PostgreSQL database name (psql on 127.0.0.1)")
    where.add_argument("--sqlite", help="path of the server's roster.db")
    ap.add_argument("--token", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--users", type=int, default=100)
    args = ap.parse_args()
    conn = http.client.HTTPConnection(args.host, args.port)
    results = []
    for kind, q in queries(args.db, args.sqlite, args.users):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            conn.request("GET", "/open-apis/search/v1/user?query=" + urllib.parse.quote(q)
                         + "&page_size=20", headers={"Authorization": "Bearer " + args.token})
            body = conn.getresponse().read()
            times.append((time.perf_counter() - t) * 1000)
        reply = json.loads(body)
        if reply.get("code") != 0:
            raise SystemExit(f"{q!r}: {reply}")
        found = len(reply.get("data", {}).get("users", []))
        results.append((statistics.median(times), kind, q, found))
    results.sort()

    def line(label: str, ts: list[float]) -> str:
        return (f"{label:10} n {len(ts):4}  p50 {ts[len(ts) // 2]:7.2f}  "
                f"p90 {ts[int(len(ts) * 0.9)]:7.2f}  p99 {ts[int(len(ts) * 0.99)]:7.2f}  "
                f"max {ts[-1]:7.2f} ms")

    print(line("all", [r[0] for r in results]))
    for kind in ("substring", "cjk", "pinyin"):
        print(line(kind, [r[0] for r in results if r[1] == kind]))
    print("slowest:")
    for ms, kind, q, found in results[-10:]:
        print(f"  {ms:7.2f} ms  {kind:9} {q!r} ({found} found)")


if __name__ == "__main__":
    main()
