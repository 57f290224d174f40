#!/usr/bin/env bash
# The whole test suite, as README.md documents it and .ci/run calls it:
#   formatting, clippy (warnings are errors), unit tests, the store conformance suite on
#   SQLite and on PostgreSQL, the end-to-end tests against the real binary, and the official
#   Feishu, Quick BI and Huawei Workspace SDKs (pinned, installed under target/sdk) driving
#   that binary (on SQLite, then on PostgreSQL), and a small run of the benchmark
#   (roster-bench) checking its JSON report.
# PostgreSQL: uses ROSTER_TEST_POSTGRES_URL when set; otherwise starts the local cluster if
# it is installed and down, and uses postgres://postgres@127.0.0.1:5432/test. Where no
# PostgreSQL exists, the PostgreSQL tests print SKIPPED and this script says so loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "PostgreSQL"
if [ -z "${ROSTER_TEST_POSTGRES_URL:-}" ]; then
  if command -v pg_lsclusters >/dev/null 2>&1; then
    if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      echo "PostgreSQL is installed but down; starting the local cluster"
      # A failed start is reported below, once the wait shows the server is not up.
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
      for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
    fi
    if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      export ROSTER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
    else
      # PostgreSQL is installed here, so its suites must run: a cluster that would not
      # start fails the run instead of turning every PostgreSQL test into a quiet skip.
      pg_lsclusters || true
      echo "PostgreSQL is installed but did not start; set ROSTER_TEST_POSTGRES_URL or fix the cluster" >&2
      exit 1
    fi
  fi
fi
if [ -n "${ROSTER_TEST_POSTGRES_URL:-}" ]; then
  echo "PostgreSQL tests run against ${ROSTER_TEST_POSTGRES_URL}"
  # Each test makes its own database; drop the ones earlier runs left behind.
  if command -v psql >/dev/null 2>&1; then
    psql "$ROSTER_TEST_POSTGRES_URL" -Atqc \
      "SELECT datname FROM pg_database WHERE datname LIKE 'roster\_test\_%' OR datname LIKE 'roster\_e2e\_%'" 2>/dev/null |
      while read -r db; do psql "$ROSTER_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done
  fi
else
  echo "################################################################"
  echo "# SKIPPED: no PostgreSQL found; the PostgreSQL store suite and  #"
  echo "# the PostgreSQL end-to-end tests will print SKIPPED and pass.  #"
  echo "################################################################"
fi

step "cargo test (unit, store conformance on SQLite and PostgreSQL, end to end)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"

step "official SDK conformance (Feishu Node + Python, Quick BI Python, Huawei Workspace Python)"
# cargo test has just built target/debug/roster for the end-to-end tests; reuse it.
sdk_log="$(mktemp)"
trap 'rm -f "$log" "$sdk_log"' EXIT
bash scripts/sdk-conformance.sh target/debug/roster 2>&1 | tee "$sdk_log"
if [ -n "${ROSTER_TEST_POSTGRES_URL:-}" ]; then
  step "official SDK conformance again, the server on PostgreSQL"
  # The same four suites with the server, the CLI and every server a test starts on
  # PostgreSQL: both stores must look alike through the wire, races included.
  SDK_CONFORMANCE_POSTGRES_URL="$ROSTER_TEST_POSTGRES_URL" \
    bash scripts/sdk-conformance.sh target/debug/roster 2>&1 | tee -a "$sdk_log"
fi

step "benchmark smoke run (roster-bench, 2 000 users, debug build)"
# Not a measurement: it proves the one-command benchmark runs end to end on both stores and
# that its last line carries every key runs are compared by.
bench_log="$(mktemp)"
trap 'rm -f "$log" "$sdk_log" "$bench_log"' EXIT
bench_pg=()
if [ -n "${ROSTER_TEST_POSTGRES_URL:-}" ]; then bench_pg=(--postgres-url "$ROSTER_TEST_POSTGRES_URL"); fi
cargo run --locked -q -p roster-bench -- --users 2000 --search-seconds 1 --get-seconds 1 \
  --batch-add-users 500 --roster-bin target/debug/roster "${bench_pg[@]}" 2>&1 | tee "$bench_log"
tail -n1 "$bench_log" | python3 -c '
import json, sys
report = json.loads(sys.stdin.read())
keys = "users ceiling_sqlite_rows_s import_sqlite_users_s import_sqlite_ratio ceiling_pg_rows_s import_pg_users_s import_pg_ratio batch_add_users_s search_p50_ms search_p99_ms get_ceiling_rps get_rps get_ratio get_p99_ms get_p99_default_idle_ms get_p99_floor_ms rss_mb".split()
missing = [k for k in keys if k not in report]
assert not missing, f"benchmark JSON lacks {missing}"
print("benchmark JSON line carries all", len(keys), "keys")
'

# One closing line for the whole run, summed over every test binary and both SDK suites:
# cargo's own last line belongs to whichever doc-test binary ran last, often empty.
passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}' || true)
failed=$(grep -Eo '; [0-9]+ failed' "$log" | awk '{s+=$2} END {print s+0}' || true)
node_pass=$(grep -Eo '^ℹ pass [0-9]+' "$sdk_log" | awk '{s+=$3} END {print s+0}' || true)
node_fail=$(grep -Eo '^ℹ fail [0-9]+' "$sdk_log" | awk '{s+=$3} END {print s+0}' || true)
# pytest's closing lines ("==== 3 failed, 27 passed in 2.1s ===="), one per Python suite.
py_pass=$(grep -E '^=+ .* in [0-9.]+s' "$sdk_log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}' || true)
py_fail=$(grep -E '^=+ .* in [0-9.]+s' "$sdk_log" | grep -Eo '[0-9]+ (failed|error)' | awk '{s+=$1} END {print s+0}' || true)
passed=$((passed + node_pass + ${py_pass:-0}))
failed=$((failed + node_fail + ${py_fail:-0}))
skipped=$(grep -c '^SKIPPED' "$log" || true)
step "summary"
echo "PostgreSQL checks skipped: ${skipped}"
echo "${passed} passed, ${failed} failed"
