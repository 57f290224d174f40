"""A1 and lark-oapi's TokenManager against roster: the request lark-oapi sends without a
Content-Type, `expire` as an int (> 600 so the token is reused), wrong secrets surfacing as
ObtainAccessTokenException(code=10014), domain validation, and explicit tokens."""

import json
import time

import lark_oapi as lark
import pytest
import requests
from lark_oapi.api.contact.v3 import GetDepartmentRequest
from lark_oapi.core.exception import ObtainAccessTokenException
from lark_oapi.core.token.manager import TokenManager
import lark_oapi.core.token.manager as manager_module

from conftest import APP_ID, APP_SECRET, BASE, build_client, check, new_app

TOKEN_URL = BASE + "/open-apis/auth/v3/tenant_access_token/internal"


def _root(client):
    return client.contact.v3.department.get(GetDepartmentRequest.builder().department_id("0").build())


def test_token_request_without_content_type():
    """lark-oapi posts raw bytes with no Content-Type header; roster must still parse them."""
    body = json.dumps({"app_id": APP_ID, "app_secret": APP_SECRET}).encode()
    prepared = requests.Request("POST", TOKEN_URL, data=body).prepare()
    assert "Content-Type" not in prepared.headers
    resp = requests.Session().send(prepared, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    payload = resp.json()
    assert payload["code"] == 0, payload
    assert payload["tenant_access_token"].startswith("t-")
    assert type(payload["expire"]) is int, f"expire must be a JSON integer: {payload!r}"
    assert 600 < payload["expire"] <= 7200
    assert "data" not in payload or payload["data"] in (None, {})


def test_token_manager_caches_and_reuses_the_token(monkeypatch):
    """`expire` is used as time.time() + expire - 600: an int > 600 means one token request
    serves many calls."""
    app_id, secret = new_app()
    client = build_client(app_id, secret)
    calls = []
    real = manager_module.Transport.execute

    def counting(conf, req, option=None):
        if req.uri and "tenant_access_token" in req.uri:
            calls.append(req)
            assert "Content-Type" not in (req.headers or {}), "lark-oapi sends the token request bare"
        return real(conf, req, option)

    monkeypatch.setattr(manager_module.Transport, "execute", staticmethod(counting))
    for _ in range(3):
        check(_root(client), "get root department")
    assert len(calls) == 1, f"expected one token request, saw {len(calls)}"
    wrap = TokenManager.cache.cache[f"self_tenant_token:{app_id}"]
    assert wrap.value.startswith("t-")
    assert wrap.expire > time.time() + 60, "the cached token must outlive the next call"


def test_typed_calls_work_through_the_token_flow(client):
    resp = check(_root(client), "get root department")
    assert resp.data.department.open_department_id == "0"


def test_wrong_secret_raises_obtain_access_token_exception():
    app_id, _secret = new_app()  # a fresh app: nothing cached for it
    bad = build_client(app_id, "definitely-not-the-secret")
    with pytest.raises(ObtainAccessTokenException) as info:
        _root(bad)
    assert info.value.code == 10014, str(info.value)
    assert isinstance(info.value.msg, str) and info.value.msg


def test_unknown_app_raises_obtain_access_token_exception():
    bad = build_client("cli_" + "0" * 16, "whatever")
    with pytest.raises(ObtainAccessTokenException) as info:
        _root(bad)
    assert info.value.code == 10014, str(info.value)


def test_rotated_secret_is_refused_and_old_tokens_stop(client):
    """`roster app rotate-secret` makes the tokens issued before it answer 99991663 and the
    old secret 10014."""
    from conftest import cli

    app_id, secret = new_app()
    before = build_client(app_id, secret)
    check(_root(before), "before rotation")
    cli("app", "rotate-secret", app_id)
    # The SDK keeps the token it cached (for up to two hours, without refreshing on
    # 99991663), so the same client now sends a revoked token. A running server trusts a
    # token it verified for up to 5 s (AUTH_CACHE_TTL_MS, as the README says), so this waits
    # that out: the revocation comes from another process, the CLI.
    time.sleep(5.5)
    resp = _root(before)
    assert resp.code == 99991663, resp.raw.content
    TokenManager.cache.cache.pop(f"self_tenant_token:{app_id}", None)
    with pytest.raises(ObtainAccessTokenException) as info:
        _root(build_client(app_id, secret))
    assert info.value.code == 10014


def test_explicit_bogus_token_is_99991663():
    """enable_set_token + RequestOption bypasses the cache; an unknown t- token is 99991663."""
    client = build_client(enable_set_token=True)
    option = lark.RequestOption.builder().tenant_access_token("t-" + "b" * 40).build()
    resp = client.contact.v3.department.get(GetDepartmentRequest.builder().department_id("0").build(), option)
    assert resp.code == 99991663, resp.raw.content
    option = lark.RequestOption.builder().tenant_access_token("nonsense").build()
    resp = client.contact.v3.department.get(GetDepartmentRequest.builder().department_id("0").build(), option)
    assert resp.code == 99991671, resp.raw.content


def test_explicit_valid_token_works():
    token = requests.post(TOKEN_URL, json={"app_id": APP_ID, "app_secret": APP_SECRET}, timeout=10).json()[
        "tenant_access_token"
    ]
    client = build_client(enable_set_token=True)
    option = lark.RequestOption.builder().tenant_access_token(token).build()
    resp = check(
        client.contact.v3.department.get(GetDepartmentRequest.builder().department_id("0").build(), option),
        "explicit token",
    )
    assert resp.data.department.open_department_id == "0"


def test_domain_validation_accepts_the_base():
    """lark-oapi accepts http:// only for loopback and rejects a trailing slash."""
    assert not BASE.endswith("/")
    build_client()  # no ValueError
    with pytest.raises(ValueError):
        lark.Client.builder().app_id(APP_ID).app_secret(APP_SECRET).domain(BASE + "/").build()
