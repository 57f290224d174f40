"""Fixtures for the Quick BI conformance suite (alibabacloud_quickbi_public20220101 1.19.0).

Run through scripts/sdk-conformance.sh, which starts roster and sets ROSTER_BASE,
ROSTER_APP_ID, ROSTER_APP_SECRET (the first Feishu app, used to put users into the
directory over the Feishu HTTP API), ROSTER_BIN and ROSTER_DATA_DIR (used to create Alibaba
access keys with `roster app create --kind alibaba` against the running server's database).
"""

import itertools
import json
import os
import re
import secrets
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests
from alibabacloud_quickbi_public20220101.client import Client
from alibabacloud_tea_openapi import utils_models as open_api_models


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the suite through scripts/sdk-conformance.sh", 2)
    return value


BASE = _need("ROSTER_BASE").rstrip("/")
APP_ID = _need("ROSTER_APP_ID")
APP_SECRET = _need("ROSTER_APP_SECRET")
BIN = _need("ROSTER_BIN")
DATA_DIR = _need("ROSTER_DATA_DIR")
ENDPOINT = urlsplit(BASE).netloc  # host:port only: the SDK puts a path into the Host header

# Requests to the local server must not go through a proxy.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def roster(*args: str) -> str:
    """Runs the roster CLI on the server's data dir and returns its standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    env["ROSTER_LOG"] = "error"
    # On a PostgreSQL run the CLI shares the server's database: the main server's, or the
    # capped server's own while test_licence_cap_refuses_the_whole_batch has swapped DATA_DIR.
    database = "SDK_PG_MAIN" if DATA_DIR == os.environ["ROSTER_DATA_DIR"] else "SDK_PG_QBICAP"
    if os.environ.get(database):
        env["ROSTER_DATABASE_URL"] = os.environ[database]
    out = subprocess.run(
        [BIN, *args, "--data-dir", DATA_DIR],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return out.stdout


def _field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{name}:\s*(\S+)", text, re.M)
    assert m, f"no {name} in: {text}"
    return m.group(1)


def tenant_ids():
    return [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s", roster("tenant", "list"), re.M)]


def create_key(tenant: int, scopes: str = "contact:read,contact:write"):
    out = roster(
        "app", "create", "--tenant", str(tenant), "--kind", "alibaba",
        "--name", "quickbi-conformance", "--scopes", scopes,
    )
    return _field(out, "access_key_id"), _field(out, "access_key_secret")


def client(ak: str, sk: str, **config) -> Client:
    return Client(open_api_models.Config(
        access_key_id=ak, access_key_secret=sk, endpoint=ENDPOINT, protocol="http", **config
    ))


@pytest.fixture(scope="session")
def tenant() -> int:
    ids = tenant_ids()
    assert ids, "roster has no tenant"
    return ids[0]


@pytest.fixture(scope="session")
def key(tenant):
    return create_key(tenant)


@pytest.fixture(scope="session")
def qb(key) -> Client:
    """The SDK's default client: ACS3-HMAC-SHA256."""
    return client(*key)


@pytest.fixture(scope="session")
def qb_v2(key) -> Client:
    """The legacy RPC signature (HMAC-SHA1 over the query)."""
    return client(*key, signature_algorithm="v2")


class Directory:
    """Puts users into the tenant's directory through the Feishu HTTP API."""

    def __init__(self):
        r = requests.post(
            f"{BASE}/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": APP_ID, "app_secret": APP_SECRET},
            timeout=30,
        )
        r.raise_for_status()
        self.token = r.json()["tenant_access_token"]
        self.tag = secrets.token_hex(3)
        self._n = itertools.count(1)
        self._mobile = itertools.count(secrets.randbelow(900_000))

    def user(self, *, email: bool = True, mobile: bool = True, name: str = None) -> dict:
        n = next(self._n)
        body = {
            "name": name or f"QB {self.tag} {n}",
            "user_id": f"qb{self.tag}n{n}",
            "department_ids": ["0"],
            "employee_type": 1,
        }
        if email:
            body["email"] = f"qb.{self.tag}.{n}@conformance.example.com"
        if not mobile:
            return self._imported(body)
        # Feishu requires a mobile at creation (and U9 will not clear it).
        body["mobile"] = f"+86138{80:02d}{next(self._mobile) % 1_000_000:06d}"
        r = requests.post(
            f"{BASE}/open-apis/contact/v3/users?user_id_type=user_id",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        data = r.json()
        assert data.get("code") == 0, data
        return data["data"]["user"]

    def _imported(self, body: dict) -> dict:
        """A user without a mobile, through Roster's bulk import (which, unlike Feishu, does
        not require one), as the Feishu API then shows it."""
        row = {k: v for k, v in body.items() if k in ("name", "user_id", "email")}
        auth = {"Authorization": f"Bearer {self.token}"}
        r = requests.post(
            f"{BASE}/api/v1/imports?notify=false",
            data=json.dumps(row) + "\n",
            headers={**auth, "Content-Type": "application/x-ndjson"},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        task = r.json()["task_id"]
        deadline = time.monotonic() + 60
        while True:
            st = requests.get(f"{BASE}/api/v1/imports/{task}", headers=auth, timeout=30).json()
            if st["status"] in ("done", "failed"):
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
        assert st["succeeded"] == 1, st
        r = requests.get(
            f"{BASE}/open-apis/contact/v3/users/{body['user_id']}?user_id_type=user_id",
            headers=auth,
            timeout=30,
        )
        data = r.json()
        assert data.get("code") == 0, data
        return data["data"]["user"]


@pytest.fixture(scope="session")
def directory() -> Directory:
    return Directory()
