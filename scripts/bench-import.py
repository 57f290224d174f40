#!/usr/bin/env python3
"""Users per second of one bulk import (POST /api/v1/imports), against a "ceiling".

Usage: python3 scripts/bench-import.py [--users N] [--bin target/release/roster]
                                       [--postgres-url postgres://…/db] [--no-ceiling]

Starts the release binary on 127.0.0.1:0 over a fresh data directory (and, with
--postgres-url, a fresh database on that server), streams ONE NDJSON upload of N generated
users (name, user id, e-mail, mobile, employee number, job title, city) and polls
GET /api/v1/imports/{id} until the task is done. Prints the upload time, the total time from
the first byte to completion and users/s, by the client's wall clock.

The ceiling is plain inserts of the same rows into the same schema and indexes in one
transaction: the users and user_departments rows the import wrote are read back, a fresh
database gets the same schema, and the rows are inserted again with prepared statements
(SQLite, `executemany` in one transaction) or COPY (PostgreSQL, through psql). The ratio
import/ceiling is the figure of merit. Only the standard library (and psql) is used."""

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import queue


def start(bin_path, data_dir, extra):
    with open(os.path.join(data_dir, "roster.toml"), "w") as f:
        f.write("log = \"warn\"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    proc = subprocess.Popen([bin_path, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=data_dir, env=env)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    app_id = secret = base = None
    while base is None:
        line = lines.get(timeout=120)
        if m := re.match(r"\s*app_id:\s*(\S+)", line):
            app_id = m.group(1)
        elif m := re.match(r"\s*app_secret:\s*(\S+)", line):
            secret = m.group(1)
        elif m := re.match(r"roster listening on (http://\S+)", line):
            base = m.group(1)
    return proc, base, app_id, secret


def call(base, method, path, body=None, token=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def rows(n, batch=2000):
    """The upload body, generated as it is sent (chunked transfer encoding)."""
    for start in range(0, n, batch):
        out = []
        for i in range(start, min(n, start + batch)):
            out.append(f'{{"name":"Bench User {i}","user_id":"b{i}","email":"b{i}@bench.example",'
                       f'"mobile":"+86139{i:08d}","employee_no":"E{i}","job_title":"Engineer",'
                       f'"city":"Shanghai"}}\n')
        yield "".join(out).encode()


def import_run(label, bin_path, users, extra):
    data_dir = tempfile.mkdtemp(prefix=f"roster-bench-import-{label}-")
    proc, base, app_id, secret = start(bin_path, data_dir, extra)
    try:
        token = call(base, "POST", "/open-apis/auth/v3/tenant_access_token/internal",
                     json.dumps({"app_id": app_id, "app_secret": secret}).encode(),
                     headers={"Content-Type": "application/json"})["tenant_access_token"]
        t0 = time.monotonic()
        resp = call(base, "POST", "/api/v1/imports", rows(users), token,
                    {"Content-Type": "application/x-ndjson"})
        t_upload = time.monotonic() - t0
        task = resp["task_id"]
        while True:
            s = call(base, "GET", f"/api/v1/imports/{task}", token=token)
            if s["status"] in ("done", "failed"):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        assert s["status"] == "done" and s["succeeded"] == users, s
        rate = users / elapsed
        print(f"{label:<10} users={users} upload={t_upload:.2f}s total={elapsed:.2f}s users_per_s={rate:,.0f}",
              flush=True)
        return rate, data_dir
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def sqlite_ceiling(data_dir):
    """Prepared inserts of the imported users and memberships into a fresh copy of the schema."""
    src = sqlite3.connect(os.path.join(data_dir, "roster.db"))
    master = src.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
        "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END").fetchall()
    # A virtual table creates its own shadow tables; they must not be created twice.
    virtual = [n for (t, n, sql) in master if sql.upper().startswith("CREATE VIRTUAL")]
    schema = [sql for (t, n, sql) in master if not any(n.startswith(v + "_") for v in virtual)]
    ucols = [r[1] for r in src.execute("PRAGMA table_info(users)")]
    mcols = [r[1] for r in src.execute("PRAGMA table_info(user_departments)")]
    users = src.execute(f"SELECT {','.join(ucols)} FROM users WHERE user_id LIKE 'b%'").fetchall()
    keys = {u[0] for u in users}
    members = [m for m in src.execute(f"SELECT {','.join(mcols)} FROM user_departments") if m[0] in keys]
    tenants = src.execute("SELECT * FROM tenants").fetchall()
    depts = src.execute("SELECT * FROM departments").fetchall()
    src.close()
    path = os.path.join(tempfile.mkdtemp(prefix="roster-bench-ceiling-"), "ceiling.db")
    dst = sqlite3.connect(path, isolation_level=None)
    dst.execute("PRAGMA journal_mode=WAL")
    dst.execute("PRAGMA synchronous=NORMAL")
    for sql in schema:
        dst.execute(sql)
    dst.executemany(f"INSERT INTO tenants VALUES ({','.join('?' * len(tenants[0]))})", tenants)
    dst.executemany(f"INSERT INTO departments VALUES ({','.join('?' * len(depts[0]))})", depts)
    t0 = time.monotonic()
    dst.execute("BEGIN")
    dst.executemany(f"INSERT INTO users ({','.join(ucols)}) VALUES ({','.join('?' * len(ucols))})", users)
    dst.executemany(f"INSERT INTO user_departments ({','.join(mcols)}) VALUES ({','.join('?' * len(mcols))})",
                    members)
    dst.execute("COMMIT")
    elapsed = time.monotonic() - t0
    dst.close()
    rate = len(users) / elapsed
    print(f"ceiling    sqlite prepared inserts: users={len(users)} {elapsed:.2f}s rows_per_s={rate:,.0f}")
    return rate


def pg_ceiling(url):
    """COPY of the imported users and memberships into a fresh copy of the schema."""
    base = url.rsplit("/", 1)[0]
    db = f"roster_bench_ceiling_{os.getpid()}"
    subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {db}"], check=True)
    dst = f"{base}/{db}"
    try:
        schema = subprocess.run(["pg_dump", "-s", url], check=True, capture_output=True, text=True).stdout
        subprocess.run(["psql", dst, "-q"], input=schema, check=True, text=True, capture_output=True)
        for table in ("tenants", "departments"):
            data = subprocess.run(["psql", url, "-qc", f"COPY {table} TO STDOUT"], check=True,
                                  capture_output=True).stdout
            subprocess.run(["psql", dst, "-qc", f"COPY {table} FROM STDIN"], input=data, check=True)
        users = subprocess.run(["psql", url, "-qc", "COPY (SELECT * FROM users WHERE user_id LIKE 'b%') TO STDOUT"],
                               check=True, capture_output=True).stdout
        members = subprocess.run(["psql", url, "-qc",
                                  "COPY (SELECT ud.* FROM user_departments ud JOIN users u ON u.id = ud.user_id "
                                  "WHERE u.user_id LIKE 'b%') TO STDOUT"], check=True, capture_output=True).stdout
        n = users.count(b"\n")
        t0 = time.monotonic()
        script = b"BEGIN;\nCOPY users FROM STDIN;\n" + users + b"\\.\nCOPY user_departments FROM STDIN;\n" + \
            members + b"\\.\nCOMMIT;\n"
        subprocess.run(["psql", dst, "-q", "-v", "ON_ERROR_STOP=1"], input=script, check=True, capture_output=True)
        elapsed = time.monotonic() - t0
        rate = n / elapsed
        print(f"ceiling    postgres COPY: users={n} {elapsed:.2f}s rows_per_s={rate:,.0f}")
        return rate
    finally:
        subprocess.run(["psql", url, "-qc", f"DROP DATABASE IF EXISTS {db}"], capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--bin", default="target/release/roster")
    ap.add_argument("--postgres-url")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    results = {"users": a.users}
    if not a.no_sqlite:
        rate, data_dir = import_run("sqlite", a.bin, a.users, [])
        results["sqlite_users_s"] = round(rate)
        if not a.no_ceiling:
            ceiling = sqlite_ceiling(data_dir)
            results["sqlite_ceiling_rows_s"] = round(ceiling)
            results["sqlite_ratio"] = round(rate / ceiling, 2)
    if a.postgres_url:
        db = f"roster_bench_import_{os.getpid()}"
        subprocess.run(["psql", a.postgres_url, "-qc", f"CREATE DATABASE {db}"], check=True)
        url = a.postgres_url.rsplit("/", 1)[0] + "/" + db
        try:
            rate, _ = import_run("postgres", a.bin, a.users, ["--database-url", url])
            results["postgres_users_s"] = round(rate)
            if not a.no_ceiling:
                ceiling = pg_ceiling(url)
                results["postgres_ceiling_rows_s"] = round(ceiling)
                results["postgres_ratio"] = round(rate / ceiling, 2)
        finally:
            subprocess.run(["psql", a.postgres_url, "-qc", f"DROP DATABASE IF EXISTS {db}"])
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
