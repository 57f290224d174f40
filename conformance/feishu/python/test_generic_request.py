"""lark-oapi's generic `client.request(BaseRequest)`: it parses `code`/`msg` only when the
response header is spelled exactly `Content-Type` (resp.raw.headers is a plain dict copied
from requests), adds no Content-Type for bodies, and leaves `data` in resp.raw.content.
This is the path integrators use for U4 search and U8 JSAPI ticket, which have no typed
method in lark-oapi."""

import json

import lark_oapi as lark

from conftest import OU_UNKNOWN, mk_dept, mk_user


def tenant_request(method, uri, queries=None, body=None, headers=None):
    b = (
        lark.BaseRequest.builder()
        .http_method(method)
        .uri(uri)
        .token_types({lark.AccessTokenType.TENANT})
    )
    if queries:
        b = b.queries(queries)
    if body is not None:
        b = b.body(body)
    if headers:
        b = b.headers(headers)
    return b.build()


def payload(resp):
    return json.loads(resp.raw.content)


def test_response_header_is_title_case_content_type(client):
    resp = client.request(tenant_request(lark.HttpMethod.POST, "/open-apis/jssdk/ticket/get"))
    assert "Content-Type" in resp.raw.headers, (
        f"header names must be title-case for lark-oapi's generic request: {list(resp.raw.headers)}"
    )
    assert resp.raw.headers["Content-Type"].startswith("application/json")


def test_jsapi_ticket_via_generic_request(client):
    resp = client.request(tenant_request(lark.HttpMethod.POST, "/open-apis/jssdk/ticket/get"))
    assert resp.code == 0, resp.raw.content
    body = payload(resp)
    assert isinstance(body["data"]["ticket"], str) and body["data"]["ticket"]
    assert isinstance(body["data"]["expire_in"], int) and 0 < body["data"]["expire_in"] <= 7200
    assert body["msg"] == "ok", "the JSSDK API says ok, not success (spec 9)"
    again = payload(client.request(tenant_request(lark.HttpMethod.POST, "/open-apis/jssdk/ticket/get")))
    assert again["data"]["ticket"] == body["data"]["ticket"], "the same ticket while it is valid"


def test_error_code_is_parsed_via_generic_request(client):
    resp = client.request(tenant_request(lark.HttpMethod.GET, f"/open-apis/contact/v3/users/{OU_UNKNOWN}"))
    assert resp.code == 41012, (resp.code, resp.raw.headers, resp.raw.content)
    assert isinstance(resp.msg, str) and resp.msg


def test_404_and_405_via_generic_request(client):
    resp = client.request(tenant_request(lark.HttpMethod.GET, "/open-apis/contact/v3/nothing_here"))
    assert resp.raw.status_code == 404
    assert resp.code == 99991201, resp.raw.content
    resp = client.request(tenant_request(lark.HttpMethod.GET, "/open-apis/auth/v3/tenant_access_token/internal"))
    assert resp.raw.status_code == 405
    assert resp.code == 99991301, resp.raw.content


def test_search_via_generic_request(client, u):
    d = mk_dept(client, u)
    word = f"Py{u.id()}"
    a = mk_user(client, u, [d.open_department_id], name=f"{word} one")
    b = mk_user(client, u, [d.open_department_id], name=f"two {word}")
    resp = client.request(
        tenant_request(lark.HttpMethod.GET, "/open-apis/search/v1/user", queries=[("query", word), ("page_size", "1")])
    )
    assert resp.code == 0, resp.raw.content
    first = payload(resp)["data"]
    assert len(first["users"]) == 1 and first["has_more"] is True and first["page_token"]
    resp = client.request(
        tenant_request(
            lark.HttpMethod.GET,
            "/open-apis/search/v1/user",
            queries=[("query", word), ("page_size", "1"), ("page_token", first["page_token"])],
        )
    )
    second = payload(resp)["data"]
    assert second["has_more"] is False
    got = sorted([x["open_id"] for x in first["users"] + second["users"]])
    assert got == sorted([a.open_id, b.open_id])
    resp = client.request(tenant_request(lark.HttpMethod.GET, "/open-apis/search/v1/user", queries=[("query", "")]))
    assert resp.code == 40001, resp.raw.content


def test_json_body_with_and_without_content_type(client, u):
    """client.request() sends the body as JSON bytes; the Content-Type is the caller's job.
    Roster parses the body as JSON either way."""
    d = mk_dept(client, u)
    a = mk_user(client, u, [d.open_department_id])
    body = {"emails": [a.email]}
    with_ct = client.request(
        tenant_request(
            lark.HttpMethod.POST,
            "/open-apis/contact/v3/users/batch_get_id",
            body=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
    )
    assert with_ct.code == 0, with_ct.raw.content
    assert payload(with_ct)["data"]["user_list"][0]["user_id"] == a.open_id
    without = client.request(tenant_request(lark.HttpMethod.POST, "/open-apis/contact/v3/users/batch_get_id", body=body))
    assert without.code == 0, without.raw.content
    assert payload(without)["data"]["user_list"][0]["user_id"] == a.open_id


def test_path_params_are_percent_encoded(client, u):
    """lark-oapi encodes path params with nothing safe; a user_id with '@' and '.' must round-trip."""
    from lark_oapi.api.contact.v3 import GetUserRequest

    d = mk_dept(client, u)
    uid = f"py.{u.tag}@corp-{u.id()}"
    created = mk_user(client, u, [d.open_department_id], user_id=uid)
    resp = client.contact.v3.user.get(GetUserRequest.builder().user_id(uid).user_id_type("user_id").build())
    assert resp.code == 0, resp.raw.content
    assert resp.data.user.open_id == created.open_id
