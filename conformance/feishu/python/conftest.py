"""Fixtures for the lark-oapi conformance suite.

Run through scripts/sdk-conformance.sh, which starts roster and sets ROSTER_BASE,
ROSTER_APP_ID, ROSTER_APP_SECRET, ROSTER_BIN and ROSTER_DATA_DIR.

lark-oapi caches tenant tokens process-wide, keyed ``self_tenant_token:<app_id>``
(``TokenManager.cache``): every client built for the same app_id shares one token. Tests that
need a clean token flow therefore use an app of their own (``new_app``) or clear that key.
"""

import os
import re
import secrets
import subprocess
import itertools

import lark_oapi as lark
import pytest
from lark_oapi.api.contact.v3 import (
    CreateDepartmentRequest,
    CreateUserRequest,
    Department,
    User,
)


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the suite through scripts/sdk-conformance.sh", 2)
    return value


BASE = _need("ROSTER_BASE")
APP_ID = _need("ROSTER_APP_ID")
APP_SECRET = _need("ROSTER_APP_SECRET")

OU_UNKNOWN = "ou_" + "0" * 31 + "1"
OD_UNKNOWN = "od-" + "0" * 31 + "1"


def build_client(app_id: str = APP_ID, app_secret: str = APP_SECRET, **kw) -> lark.Client:
    builder = (
        lark.Client.builder()
        .app_id(app_id)
        .app_secret(app_secret)
        .domain(BASE)
        .log_level(lark.LogLevel.ERROR)
    )
    for k, v in kw.items():
        builder = getattr(builder, k)(v)
    return builder.build()


class Uniq:
    """Unique names, e-mails, ids and valid mainland mobiles (+86 138 SS CCCCCC, series 90-99)."""

    def __init__(self, series: int):
        self.series = series
        self.tag = secrets.token_hex(3)
        self._mobile = itertools.count(secrets.randbelow(900_000))
        self._n = itertools.count(1)

    def mobile(self) -> str:
        return f"+86138{self.series:02d}{next(self._mobile) % 1_000_000:06d}"

    def email(self, prefix: str = "py") -> str:
        return f"{prefix}.{self.tag}.{self.series}.{next(self._n)}@conformance.example.com"

    def name(self, prefix: str = "Py") -> str:
        return f"{prefix} {self.tag}-{self.series}-{next(self._n)}"

    def id(self, prefix: str = "py") -> str:
        return f"{prefix}{self.tag}{self.series}n{next(self._n)}"


_UNIQ = Uniq(90)


@pytest.fixture(scope="session")
def u() -> Uniq:
    return _UNIQ


@pytest.fixture(scope="session")
def client() -> lark.Client:
    return build_client()


def check(resp, what: str = "call"):
    """Asserts a typed response succeeded and returns it."""
    assert resp.code == 0 and resp.success(), (
        f"{what}: expected code 0, got code={resp.code} msg={resp.msg!r} "
        f"raw={getattr(getattr(resp, 'raw', None), 'content', b'')[:500]!r}"
    )
    return resp


def mk_dept(client: lark.Client, u: Uniq, parent: str = "0", **fields):
    body = Department.builder().name(fields.pop("name", None) or u.name("PyDept")).parent_department_id(parent)
    for k, v in fields.items():
        body = getattr(body, k)(v)
    req = CreateDepartmentRequest.builder().request_body(body.build()).build()
    resp = check(client.contact.v3.department.create(req), "create department")
    assert resp.data.department.open_department_id.startswith("od-")
    return resp.data.department


def mk_user(client: lark.Client, u: Uniq, depts, **fields):
    body = (
        User.builder()
        .name(fields.pop("name", None) or u.name())
        .mobile(fields.pop("mobile", None) or u.mobile())
        .email(fields.pop("email", None) or u.email())
        .employee_type(1)
        .department_ids(list(depts))
    )
    for k, v in fields.items():
        body = getattr(body, k)(v)
    req = CreateUserRequest.builder().request_body(body.build()).build()
    resp = check(client.contact.v3.user.create(req), "create user")
    assert resp.data.user.open_id.startswith("ou_")
    return resp.data.user


def _cli_env(database: str = "SDK_PG_MAIN") -> dict:
    # The roster CLI refuses unknown ROSTER_* settings; keep the suite's own variables away.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    env.update({"RUST_LOG": "warn", "ROSTER_LOG": "warn"})
    # On a PostgreSQL run (scripts/sdk-conformance.sh with SDK_CONFORMANCE_POSTGRES_URL) the
    # CLI and the servers a test starts use the database the script made for them.
    if os.environ.get(database):
        env["ROSTER_DATABASE_URL"] = os.environ[database]
    return env


def cli(*args: str) -> str:
    out = subprocess.run(
        [_need("ROSTER_BIN"), "--data-dir", _need("ROSTER_DATA_DIR"), *args],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"roster {' '.join(args)} failed: {out.stdout}\n{out.stderr}"
    return out.stdout


def new_app(scopes: str = "") -> tuple:
    """A fresh app of tenant 1 (never seen by lark-oapi's token cache): (app_id, app_secret)."""
    args = ["app", "create", "--tenant", "1"]
    if scopes:
        args += ["--scopes", scopes]
    out = cli(*args)
    app_id = re.search(r"app_id:\s*(\S+)", out)
    secret = re.search(r"app_secret:\s*(\S+)", out)
    assert app_id and secret, out
    return app_id.group(1), secret.group(1)
