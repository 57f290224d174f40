"""Fixtures for the Huawei Workspace conformance suite (huaweicloudsdkworkspace 3.1.219).

Run through scripts/sdk-conformance.sh, which starts roster and sets ROSTER_BASE, ROSTER_BIN
and ROSTER_DATA_DIR; Huawei AK/SK pairs are created with `roster app create --kind huawei`
against the running server's data dir (same database, same secret.key).
"""

import os
import re
import secrets
import subprocess

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkworkspace.v2 import WorkspaceClient


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the suite through scripts/sdk-conformance.sh", 2)
    return value


BASE = _need("ROSTER_BASE").rstrip("/")
BIN = _need("ROSTER_BIN")
DATA_DIR = _need("ROSTER_DATA_DIR")

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
# The SDK writes an application id under ~/.huaweicloud; keep it inside the test's world.
os.environ.setdefault("HOME", DATA_DIR)


def roster(*args: str) -> str:
    """Runs the roster CLI on the server's data dir and returns its standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    env["ROSTER_LOG"] = "error"
    # On a PostgreSQL run the CLI shares the server's database.
    if os.environ.get("SDK_PG_MAIN"):
        env["ROSTER_DATABASE_URL"] = os.environ["SDK_PG_MAIN"]
    out = subprocess.run(
        [BIN, *args, "--data-dir", DATA_DIR],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return out.stdout


def stored_password_hashes(user_names) -> dict:
    """The password hash each user's stored profile holds (None without one), read straight
    from the server's database: the API never shows it."""
    names = [n.lower() for n in user_names]
    if os.environ.get("SDK_PG_MAIN"):
        out = subprocess.run(
            ["psql", os.environ["SDK_PG_MAIN"], "-AtF", "\t", "-c",
             "SELECT username_fold, doc::jsonb->>'password_hash' FROM users "
             "WHERE username_fold = ANY(string_to_array(%s, ','))" % _sql_text(",".join(names))],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout
        rows = [line.split("\t") for line in out.splitlines() if line]
        found = {r[0]: (r[1] or None) for r in rows}
    else:
        import sqlite3

        db = sqlite3.connect(f"file:{os.path.join(DATA_DIR, 'roster.db')}?mode=ro", uri=True, timeout=10)
        try:
            found = dict(db.execute(
                "SELECT username_fold, json_extract(doc, '$.password_hash') FROM users "
                f"WHERE username_fold IN ({','.join('?' * len(names))})", names).fetchall())
        finally:
            db.close()
    assert set(found) == set(names), f"users not found in the store: {set(names) - set(found)}"
    return found


def _sql_text(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{name}:\s*(\S+)", text, re.M)
    assert m, f"no {name} in: {text}"
    return m.group(1)


class Key:
    """A Huawei AK/SK pair as `roster app create --kind huawei` printed it."""

    def __init__(self, tenant: int = 1, project_id: str = "", scopes: str = ""):
        args = ["app", "create", "--tenant", str(tenant), "--kind", "huawei", "--name", "conformance"]
        if project_id:
            args += ["--project-id", project_id]
        if scopes:
            args += ["--scopes", scopes]
        out = roster(*args)
        self.ak = field(out, "access_key_id")
        self.sk = field(out, "access_key_secret")
        self.project_id = field(out, "project_id")


def client(ak: str, sk: str, project_id: str, handler=None) -> WorkspaceClient:
    cfg = HttpConfig.get_default_config()
    cfg.timeout = (5, 60)
    builder = (
        WorkspaceClient.new_builder()
        .with_http_config(cfg)
        .with_credentials(BasicCredentials(ak, sk, project_id))
        .with_endpoint(BASE)
    )
    if handler is not None:
        builder = builder.with_http_handler(handler)
    return builder.build()


def token_client(token: str, project_id: str) -> WorkspaceClient:
    """Sends X-Auth-Token instead of a signature (spec 2.3, way A)."""

    def swap(**kw):
        hp = kw["request"].header_params
        for k in [k for k in hp if k.lower() in ("authorization", "x-sdk-date")]:
            del hp[k]
        hp["X-Auth-Token"] = token

    return client("unused", "unused", project_id, HttpHandler().add_request_handler(swap))


def issue_token(ak: str, sk: str, project_id: str) -> requests.Response:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": ak, "password": sk, "domain": {"name": "roster"}}},
            },
            "scope": {"project": {"id": project_id}},
        }
    }
    return requests.post(f"{BASE}/v3/auth/tokens", json=body, timeout=30)


@pytest.fixture(scope="session")
def key() -> Key:
    return Key()


@pytest.fixture(scope="session")
def ws(key: Key) -> WorkspaceClient:
    return client(key.ak, key.sk, key.project_id)


@pytest.fixture
def name():
    """A fresh user name (Workspace: 1-20 characters, not starting with a digit)."""
    counter = iter(range(10**6))

    def make(prefix: str = "u") -> str:
        return f"{prefix}{secrets.token_hex(4)}{next(counter)}"

    return make
