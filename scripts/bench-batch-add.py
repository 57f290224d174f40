#!/usr/bin/env python3
"""Users per second of one large Feishu v2 batch_add task, on SQLite and on PostgreSQL.

Usage: python3 scripts/bench-batch-add.py [--users N] [--bin target/release/roster]
                                          [--postgres-url postgres://…/db]

Starts the release binary on 127.0.0.1:0 over a fresh data directory (and, with
--postgres-url, a fresh database on that server), submits ONE batch_add of N users (each in
the root department, with a unique mobile and user id), and polls task/get until the task is
done. Prints, per store, the time from submission to completion and users/s, measured by the
client's wall clock. Only the standard library is used."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import queue


def start(bin_path, data_dir, extra):
    with open(os.path.join(data_dir, "roster.toml"), "w") as f:
        f.write("feishu_batch_add_max_users = 1000000\nbody_limit = 536870912\nlog = \"warn\"\n")
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


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def run(label, bin_path, users, extra):
    data_dir = tempfile.mkdtemp(prefix=f"roster-bench-{label}-")
    proc, base, app_id, secret = start(bin_path, data_dir, extra)
    try:
        token = call(base, "POST", "/open-apis/auth/v3/tenant_access_token/internal",
                     {"app_id": app_id, "app_secret": secret})["tenant_access_token"]
        body = {"users": [{"name": f"Bench {i}", "user_id": f"b{i}", "mobile": f"+86139{i:08d}",
                           "departments": ["0"]} for i in range(users)]}
        t0 = time.monotonic()
        task_id = call(base, "POST", "/open-apis/contact/v2/user/batch_add", body, token)["data"]["task_id"]
        t_submit = time.monotonic() - t0
        while True:
            d = call(base, "GET", f"/open-apis/contact/v2/task/get?task_id={task_id}", token=token)["data"]
            if d["status"] >= 9:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        assert d["success_num"] == users, d
        rate = users / elapsed
        print(f"{label:<10} users={users} submit={t_submit:.2f}s total={elapsed:.2f}s users_per_s={rate:,.0f}")
        return rate
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--bin", default="target/release/roster")
    ap.add_argument("--postgres-url")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    results = {"users": a.users, "sqlite_users_s": round(run("sqlite", a.bin, a.users, []))}
    if a.postgres_url:
        db = f"roster_bench_{os.getpid()}"
        subprocess.run(["psql", a.postgres_url, "-qc", f"CREATE DATABASE {db}"], check=True)
        url = a.postgres_url.rsplit("/", 1)[0] + "/" + db
        try:
            results["postgres_users_s"] = round(run("postgres", a.bin, a.users, ["--database-url", url]))
        finally:
            subprocess.run(["psql", a.postgres_url, "-qc", f"DROP DATABASE IF EXISTS {db}"])
    else:
        print("postgres   SKIPPED (no --postgres-url)")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
