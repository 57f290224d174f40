#!/usr/bin/env bash
# Official-SDK conformance: drives a real roster server through the Feishu SDKs
# (@larksuiteoapi/node-sdk 1.74.0 and lark-oapi 1.7.5) exactly as integrators use them.
#
#   bash scripts/sdk-conformance.sh [path-to-roster-binary]     (default: target/debug/roster)
#
# 1. Installs the SDKs into folders this script owns (nothing global):
#      target/sdk/node   npm ci from conformance/feishu/node/package{,-lock}.json
#      target/sdk/venv   python venv from conformance/feishu/python/requirements.txt
#    and reuses them while the pinned files are unchanged.
# 2. Starts the binary on 127.0.0.1:0 over a fresh SQLite data dir and reads the first-start
#    credentials and the address from its standard output.
# 3. Runs the Node suite (node --test conformance/feishu/node/*.test.mjs) and the Python suite
#    (pytest conformance/feishu/python), passing ROSTER_BASE, ROSTER_APP_ID, ROSTER_APP_SECRET,
#    ROSTER_BIN and ROSTER_DATA_DIR.
# 4. Stops the server; exits non-zero when either suite failed.
#
# Quick BI: the official alibabacloud_quickbi_public20220101 SDK (pinned with its tea/openapi
# stack in conformance/quickbi/python/requirements.txt) goes into target/sdk/venv-quickbi, and
# pytest conformance/quickbi/python runs against the same server (it creates its Alibaba keys
# with `roster app create --kind alibaba` on ROSTER_DATA_DIR).
#
# Huawei Workspace: the official huaweicloudsdkworkspace SDK (pinned with huaweicloudsdkcore in
# conformance/huawei/python/requirements.txt) goes into target/sdk/venv-huawei, and pytest
# conformance/huawei/python runs against the same server (it creates its AK/SK pairs with
# `roster app create --kind huawei` on ROSTER_DATA_DIR).
#
# PostgreSQL: with SDK_CONFORMANCE_POSTGRES_URL=postgres://USER@HOST:PORT/DB (any database the
# user may create databases from), the server and every CLI call and server a test starts use
# PostgreSQL instead: the script (re)creates four databases roster_sdk_{main,restart,batch,
# qbicap} beside DB and passes their URLs to the suites as SDK_PG_MAIN, SDK_PG_RESTART,
# SDK_PG_BATCH and SDK_PG_QBICAP.
#
# Environment knobs: SDK_CONFORMANCE_ONLY=node|python|quickbi|huawei runs one suite; SDK_CONFORMANCE_KEEP=1
# keeps the temporary data dir and server log; ROSTER_SDK_LOG=error|info|debug turns the Node
# SDK's logger on; extra pytest arguments go in PYTEST_ADDOPTS, node test name filters in
# NODE_TEST_NAME_PATTERN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF="$ROOT/conformance/feishu"
SDK="$ROOT/target/sdk"
NODE_SDK_VERSION="1.74.0"
LARK_OAPI_VERSION="1.7.5"

BIN="${1:-$ROOT/target/debug/roster}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac

section() { printf '\n==================== %s ====================\n' "$*"; }
die() { printf 'sdk-conformance: %s\n' "$*" >&2; exit 2; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# A misspelt suite name would run nothing and pass.
case "${SDK_CONFORMANCE_ONLY:-}" in
    ""|node|python|quickbi|huawei) ;;
    *) die "unknown SDK_CONFORMANCE_ONLY=${SDK_CONFORMANCE_ONLY:-} (node, python, quickbi or huawei)" ;;
esac

# ---------------------------------------------------------------------------------------------
section "Prerequisites"
[ -x "$BIN" ] || die "no roster binary at $BIN (build it: cargo build -p roster)"
command -v node >/dev/null || die "node (>= 18) is required"
command -v npm >/dev/null || die "npm is required"
command -v python3 >/dev/null || die "python3 (>= 3.8) is required"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "node >= 18 is required (found $(node --version))"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' \
    || die "python3 >= 3.8 is required (found $(python3 --version))"
echo "roster:  $BIN"
echo "node:    $(node --version), npm $(npm --version 2>/dev/null)"
echo "python:  $(python3 --version 2>&1)"

# ---------------------------------------------------------------------------------------------
section "Node SDK @larksuiteoapi/node-sdk@$NODE_SDK_VERSION -> target/sdk/node"
NODE_DIR="$SDK/node"
node_want="$(hash_of "$CONF/node/package.json" "$CONF/node/package-lock.json")"
node_sdk_ok() {
    [ "$(cd "$NODE_DIR" && node -p 'require("@larksuiteoapi/node-sdk/package.json").version' 2>/dev/null)" = "$NODE_SDK_VERSION" ]
}
if [ -f "$NODE_DIR/.installed" ] && [ "$(cat "$NODE_DIR/.installed")" = "$node_want" ] && node_sdk_ok; then
    echo "reusing the installed SDK (package-lock.json unchanged)"
else
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    cp "$CONF/node/package.json" "$CONF/node/package-lock.json" "$NODE_DIR/"
    # --ignore-scripts: the only install script in the tree is protobufjs' version notice.
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    node_sdk_ok || die "npm ci did not install @larksuiteoapi/node-sdk@$NODE_SDK_VERSION"
    echo "$node_want" > "$NODE_DIR/.installed"
    echo "installed"
fi

# ---------------------------------------------------------------------------------------------
section "Python SDK lark-oapi==$LARK_OAPI_VERSION + pytest -> target/sdk/venv"
VENV="$SDK/venv"
PY="$VENV/bin/python"
py_want="$(hash_of "$CONF/python/requirements.txt"; python3 --version 2>&1)"
py_sdk_ok() {
    [ -x "$PY" ] \
        && "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('lark-oapi') == '$LARK_OAPI_VERSION' else 1)" 2>/dev/null \
        && "$PY" -c 'import pytest, lark_oapi' 2>/dev/null
}
if [ -f "$VENV/.installed" ] && [ "$(cat "$VENV/.installed")" = "$py_want" ] && py_sdk_ok; then
    echo "reusing the installed venv (requirements.txt unchanged)"
else
    rm -rf "$VENV"
    python3 -m venv "$VENV" \
        || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$CONF/python/requirements.txt"
    py_sdk_ok || die "pip did not install lark-oapi==$LARK_OAPI_VERSION"
    echo "$py_want" > "$VENV/.installed"
    echo "installed"
fi

# ---------------------------------------------------------------------------------------------
QUICKBI_CONF="$ROOT/conformance/quickbi/python"
QUICKBI_SDK_VERSION="1.19.0"
QUICKBI_VENV="$SDK/venv-quickbi"
QUICKBI_PY="$QUICKBI_VENV/bin/python"
if [ -z "${SDK_CONFORMANCE_ONLY:-}" ] || [ "${SDK_CONFORMANCE_ONLY:-}" = "quickbi" ]; then
    section "Quick BI SDK alibabacloud_quickbi_public20220101==$QUICKBI_SDK_VERSION + pytest -> target/sdk/venv-quickbi"
    quickbi_want="$(hash_of "$QUICKBI_CONF/requirements.txt"; python3 --version 2>&1)"
    quickbi_sdk_ok() {
        [ -x "$QUICKBI_PY" ] \
            && "$QUICKBI_PY" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('alibabacloud_quickbi_public20220101') == '$QUICKBI_SDK_VERSION' else 1)" 2>/dev/null \
            && "$QUICKBI_PY" -c 'import pytest, requests, alibabacloud_quickbi_public20220101.client' 2>/dev/null
    }
    if [ -f "$QUICKBI_VENV/.installed" ] && [ "$(cat "$QUICKBI_VENV/.installed")" = "$quickbi_want" ] && quickbi_sdk_ok; then
        echo "reusing the installed venv (requirements.txt unchanged)"
    else
        rm -rf "$QUICKBI_VENV"
        python3 -m venv "$QUICKBI_VENV" \
            || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
        "$QUICKBI_PY" -m pip install --quiet --disable-pip-version-check --no-input \
            -r "$QUICKBI_CONF/requirements.txt"
        quickbi_sdk_ok || die "pip did not install alibabacloud_quickbi_public20220101==$QUICKBI_SDK_VERSION"
        echo "$quickbi_want" > "$QUICKBI_VENV/.installed"
        echo "installed"
    fi
fi

# ---------------------------------------------------------------------------------------------
HUAWEI_CONF="$ROOT/conformance/huawei/python"
HUAWEI_SDK_VERSION="3.1.219"
HUAWEI_VENV="$SDK/venv-huawei"
HUAWEI_PY="$HUAWEI_VENV/bin/python"
if [ -z "${SDK_CONFORMANCE_ONLY:-}" ] || [ "${SDK_CONFORMANCE_ONLY:-}" = "huawei" ]; then
    section "Huawei SDK huaweicloudsdkworkspace==$HUAWEI_SDK_VERSION + pytest -> target/sdk/venv-huawei"
    huawei_want="$(hash_of "$HUAWEI_CONF/requirements.txt"; python3 --version 2>&1)"
    huawei_sdk_ok() {
        [ -x "$HUAWEI_PY" ] \
            && "$HUAWEI_PY" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('huaweicloudsdkworkspace') == '$HUAWEI_SDK_VERSION' else 1)" 2>/dev/null \
            && "$HUAWEI_PY" -c 'import pytest, requests, huaweicloudsdkworkspace.v2' 2>/dev/null
    }
    if [ -f "$HUAWEI_VENV/.installed" ] && [ "$(cat "$HUAWEI_VENV/.installed")" = "$huawei_want" ] && huawei_sdk_ok; then
        echo "reusing the installed venv (requirements.txt unchanged)"
    else
        rm -rf "$HUAWEI_VENV"
        python3 -m venv "$HUAWEI_VENV" \
            || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
        "$HUAWEI_PY" -m pip install --quiet --disable-pip-version-check --no-input \
            -r "$HUAWEI_CONF/requirements.txt"
        huawei_sdk_ok || die "pip did not install huaweicloudsdkworkspace==$HUAWEI_SDK_VERSION"
        echo "$huawei_want" > "$HUAWEI_VENV/.installed"
        echo "installed"
    fi
fi

# ---------------------------------------------------------------------------------------------
STORE_ARGS=()
STORE_NAME="SQLite"
if [ -n "${SDK_CONFORMANCE_POSTGRES_URL:-}" ]; then
    command -v psql >/dev/null 2>&1 || die "SDK_CONFORMANCE_POSTGRES_URL is set but psql is missing"
    PG_BASE="${SDK_CONFORMANCE_POSTGRES_URL%/*}"
    for name in main restart batch qbicap; do
        psql "$SDK_CONFORMANCE_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS roster_sdk_$name" >/dev/null \
            && psql "$SDK_CONFORMANCE_POSTGRES_URL" -qc "CREATE DATABASE roster_sdk_$name" >/dev/null \
            || die "could not create the database roster_sdk_$name"
    done
    export SDK_PG_MAIN="$PG_BASE/roster_sdk_main" SDK_PG_RESTART="$PG_BASE/roster_sdk_restart"
    export SDK_PG_BATCH="$PG_BASE/roster_sdk_batch" SDK_PG_QBICAP="$PG_BASE/roster_sdk_qbicap"
    STORE_ARGS=(--database-url "$SDK_PG_MAIN")
    STORE_NAME="PostgreSQL $SDK_PG_MAIN"
fi
section "Starting roster ($STORE_NAME, 127.0.0.1:0)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/roster-sdk-conformance.XXXXXX")"
DATA_DIR="$WORK/data"
SERVER_OUT="$WORK/server.stdout"
SERVER_ERR="$WORK/server.stderr"
SERVER_PID=""

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "roster did not stop within 10 s of SIGTERM; killing it"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    if [ "${SDK_CONFORMANCE_KEEP:-0}" = "1" ]; then
        echo "kept $WORK (server log: $SERVER_ERR)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The binary refuses unknown ROSTER_* settings: keep this suite's own variables away from it.
(cd "$WORK" && exec env -u ROSTER_BASE -u ROSTER_APP_ID -u ROSTER_APP_SECRET -u ROSTER_BIN \
    -u ROSTER_DATA_DIR -u ROSTER_NODE_SDK_DIR -u ROSTER_SDK_LOG ROSTER_LOG="${ROSTER_LOG:-warn}" RUST_LOG="${RUST_LOG:-warn}" \
    "$BIN" "${STORE_ARGS[@]}" serve --listen 127.0.0.1:0 --data-dir "$DATA_DIR") >"$SERVER_OUT" 2>"$SERVER_ERR" &
SERVER_PID=$!

BASE=""
for _ in $(seq 1 600); do
    BASE="$(sed -n 's/^roster listening on \(http:\/\/[^ ]*\).*/\1/p' "$SERVER_OUT" | head -n1)"
    [ -n "$BASE" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "--- server stdout"; cat "$SERVER_OUT"; echo "--- server stderr"; tail -n 50 "$SERVER_ERR"
        die "roster exited before printing its address"
    fi
    sleep 0.1
done
[ -n "$BASE" ] || die "roster did not print 'roster listening on …' within 60 s"
BASE="${BASE%/}"
APP_ID="$(sed -n 's/^[[:space:]]*app_id:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$SERVER_OUT" | head -n1)"
APP_SECRET="$(sed -n 's/^[[:space:]]*app_secret:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$SERVER_OUT" | head -n1)"
[ -n "$APP_ID" ] && [ -n "$APP_SECRET" ] || die "no app_id/app_secret on roster's first start: $(cat "$SERVER_OUT")"
echo "roster pid $SERVER_PID at $BASE, app $APP_ID, data $DATA_DIR"

export ROSTER_BASE="$BASE" ROSTER_APP_ID="$APP_ID" ROSTER_APP_SECRET="$APP_SECRET"
export ROSTER_BIN="$BIN" ROSTER_DATA_DIR="$DATA_DIR" ROSTER_NODE_SDK_DIR="$NODE_DIR"
export PYTHONDONTWRITEBYTECODE=1

ONLY="${SDK_CONFORMANCE_ONLY:-}"
node_rc=0
py_rc=0
quickbi_rc=0
huawei_rc=0
server_died=0

# ---------------------------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = "node" ]; then
    section "Node suite (@larksuiteoapi/node-sdk $NODE_SDK_VERSION, node --test)"
    node_args=(--test --test-reporter=spec)
    # Files run as parallel processes; each uses its own mobile-number series.
    if node --help 2>/dev/null | grep -q -- '--test-concurrency'; then node_args+=(--test-concurrency=4); fi
    if [ -n "${NODE_TEST_NAME_PATTERN:-}" ]; then node_args+=(--test-name-pattern="$NODE_TEST_NAME_PATTERN"); fi
    (cd "$CONF/node" && node "${node_args[@]}" ./*.test.mjs) || node_rc=$?
fi

# ---------------------------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = "python" ]; then
    section "Python suite (lark-oapi $LARK_OAPI_VERSION, pytest)"
    (cd "$CONF/python" && "$PY" -m pytest -c "$CONF/python/pytest.ini" "$CONF/python") || py_rc=$?
fi

# ---------------------------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = "quickbi" ]; then
    section "Quick BI suite (alibabacloud_quickbi_public20220101 $QUICKBI_SDK_VERSION, pytest)"
    (cd "$QUICKBI_CONF" && NO_PROXY="127.0.0.1,localhost" "$QUICKBI_PY" -m pytest -c "$QUICKBI_CONF/pytest.ini" "$QUICKBI_CONF") || quickbi_rc=$?
fi

# ---------------------------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = "huawei" ]; then
    section "Huawei suite (huaweicloudsdkworkspace $HUAWEI_SDK_VERSION, pytest)"
    (cd "$HUAWEI_CONF" && NO_PROXY="127.0.0.1,localhost" "$HUAWEI_PY" -m pytest -c "$HUAWEI_CONF/pytest.ini" "$HUAWEI_CONF") || huawei_rc=$?
fi

# ---------------------------------------------------------------------------------------------
section "Stopping roster"
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "roster exited during the run (expected it to be still serving)"
    server_died=1
fi
stop_server
if [ "$node_rc" -ne 0 ] || [ "$py_rc" -ne 0 ] || [ "$quickbi_rc" -ne 0 ] || [ "$huawei_rc" -ne 0 ] || [ "$server_died" -ne 0 ]; then
    echo "--- last lines of the server log ($SERVER_ERR):"
    tail -n 20 "$SERVER_ERR" || true
fi
panicked=0
if grep -q -i 'panicked' "$SERVER_ERR" 2>/dev/null; then
    echo "roster panicked during the run:"
    grep -i -A3 'panicked' "$SERVER_ERR" | head -n 40
    panicked=1
fi

section "Summary"
status=0
# A panic fails the run even when every suite passed: one in a background task (a purge,
# the mailer, a connection's task) is seen by no test.
if [ "$panicked" -ne 0 ]; then echo "roster:       PANICKED during the run (above)"; status=1; fi
if [ "$server_died" -ne 0 ]; then echo "roster:       DIED during the run"; status=1; fi
if [ -z "$ONLY" ] || [ "$ONLY" = "node" ]; then
    if [ "$node_rc" -eq 0 ]; then echo "node suite:   PASSED"; else echo "node suite:   FAILED (exit $node_rc)"; status=1; fi
fi
if [ -z "$ONLY" ] || [ "$ONLY" = "python" ]; then
    if [ "$py_rc" -eq 0 ]; then echo "python suite: PASSED"; else echo "python suite: FAILED (exit $py_rc)"; status=1; fi
fi
if [ -z "$ONLY" ] || [ "$ONLY" = "quickbi" ]; then
    if [ "$quickbi_rc" -eq 0 ]; then echo "quickbi suite: PASSED"; else echo "quickbi suite: FAILED (exit $quickbi_rc)"; status=1; fi
fi
if [ -z "$ONLY" ] || [ "$ONLY" = "huawei" ]; then
    if [ "$huawei_rc" -eq 0 ]; then echo "huawei suite: PASSED"; else echo "huawei suite: FAILED (exit $huawei_rc)"; status=1; fi
fi
exit "$status"
