"""Huawei Workspace user APIs through the official SDK against a real roster server."""

import datetime
import hashlib
import hmac
import json
import random
import urllib.parse
import uuid

import pytest
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkworkspace.v2 import (
    BatchCreateUsersReq,
    BatchCreateUsersRequest,
    BatchDeleteUserReq,
    BatchDeleteUserRequest,
    CreateUserGroupReq,
    CreateUserGroupRequest,
    CreateUserRequest,
    DeleteUserGroupRequest,
    DeleteUserRequest,
    ListUserDetailRequest,
    ListUserGroupsRequest,
    ListUsersOfGroupRequest,
    ListUsersRequest,
)

import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkworkspace.v2 import WorkspaceClient

from conftest import BASE, Key, client, issue_token, roster, stored_password_hashes, token_client


def phone() -> str:
    return f"+86138{random.randint(0, 99_999_999):08d}"


def create(ws, *users):
    return ws.batch_create_users(BatchCreateUsersRequest(body=BatchCreateUsersReq(users=list(users))))


def fails(call, status: int, code: str):
    with pytest.raises(exceptions.ClientRequestException) as e:
        call()
    assert e.value.status_code == status, str(e.value)
    assert e.value.error_code == code, str(e.value)
    assert e.value.request_id, "every error carries X-Request-Id"
    return e.value


def count_named(ws, user_name: str) -> int:
    return ws.list_users(ListUsersRequest(user_names=[user_name])).total_count


# ------------------------------------------------------------------------------ auth

def test_signed_batch_create_creates_users_listed_afterwards(ws, name):
    a, b = name(), name()
    r = create(
        ws,
        CreateUserRequest(user_name=a, user_email=f"{a}@example.com", active_type="USER_ACTIVATE",
                          description="first user"),
        CreateUserRequest(user_name=b, account_expires="0", active_type="ADMIN_ACTIVATE", user_phone=phone(),
                          password="Passw0rd!x", next_login_change_password=False, alias_name="Bob"),
    )
    assert r.status_code == 200
    listed = ws.list_users(ListUsersRequest(user_names=[a, b], limit="10", offset="0"))
    assert listed.total_count == 2
    by_name = {u.user_name: u for u in listed.users}
    assert by_name[a].active_type == "USER_ACTIVATE" and by_name[a].description == "first user"
    assert by_name[b].active_type == "ADMIN_ACTIVATE" and by_name[b].next_login_change_password is False
    assert by_name[b].account_expires == "0"


def test_a_password_sent_with_user_activate_is_accepted_and_not_used(ws, name):
    """The docs require a password only for ADMIN_ACTIVATE; with USER_ACTIVATE the user sets
    one on activation, so the account stays unactivated with an invitation."""
    a = name()
    create(ws, CreateUserRequest(user_name=a, user_email=f"{a}@example.com", active_type="USER_ACTIVATE",
                                 password="Passw0rd!x"))
    listed = ws.list_users(ListUsersRequest(user_names=[a])).users
    assert len(listed) == 1 and listed[0].active_type == "USER_ACTIVATE"
    assert f"{a}@example.com" in roster("outbox", "list")
    # Not used: no password is stored, so the invitation is the only way in.
    assert stored_password_hashes([a]) == {a.lower(): None}


def test_user_activate_writes_an_invitation_to_the_outbox(ws, name):
    a = name()
    create(ws, CreateUserRequest(user_name=a, user_email=f"{a}@example.com"))
    assert f"{a}@example.com" in roster("outbox", "list")


def test_unknown_access_key_is_401(key, name):
    bad = client("HWUNKNOWNAK000000000", key.sk, key.project_id)
    fails(lambda: create(bad, CreateUserRequest(user_name=name(), user_email="x@example.com")), 401, "APIGW.0301")


def test_wrong_secret_is_401_and_creates_nothing(key, ws, name):
    bad = client(key.ak, "x" * 40, key.project_id)
    n = name()
    fails(lambda: create(bad, CreateUserRequest(user_name=n, user_email=f"{n}@example.com")), 401, "APIGW.0301")
    assert count_named(ws, n) == 0


def test_stale_sdk_date_is_401(ws, name):
    n = name()
    req = BatchCreateUsersRequest(body=BatchCreateUsersReq(users=[CreateUserRequest(user_name=n, user_email=f"{n}@example.com")]))
    err = fails(lambda: ws.batch_create_users_invoker(req).add_header("X-Sdk-Date", "20200101T000000Z").invoke(),
                401, "APIGW.0301")
    assert "15 minutes" in err.error_msg
    assert count_named(ws, n) == 0


def test_key_of_another_project_is_403(key, name):
    other = "f" * 32 if key.project_id != "f" * 32 else "e" * 32
    wrong = client(key.ak, key.sk, other)
    fails(lambda: wrong.list_users(ListUsersRequest()), 403, "APIGW.0302")


def test_second_project_of_the_tenant_works_with_its_own_key(name):
    k = Key(project_id=uuid.uuid4().hex)
    ws2 = client(k.ak, k.sk, k.project_id)
    n = name()
    create(ws2, CreateUserRequest(user_name=n, user_email=f"{n}@example.com"))
    assert count_named(ws2, n) == 1


def test_x_auth_token_flow(key, ws, name):
    r = issue_token(key.ak, key.sk, key.project_id)
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    assert r.json()["token"]["project"]["id"] == key.project_id
    tc = token_client(token, key.project_id)
    n = name()
    create(tc, CreateUserRequest(user_name=n, user_email=f"{n}@example.com"))
    assert count_named(ws, n) == 1
    fails(lambda: token_client("hw-" + "0" * 64, key.project_id).list_users(ListUsersRequest()), 401, "APIGW.0301")
    fails(lambda: token_client(token, "a" * 32).list_users(ListUsersRequest()), 403, "APIGW.0302")
    # An escape that is no UTF-8 is refused, not read as U+FFFD and matched as such.
    for query in ("user_name=%FF", "keyword=%FE%FF"):
        path = "users" if query.startswith("user_name") else "groups"
        r = requests.get(f"{BASE}/v2/{key.project_id}/{path}?{query}", headers={"X-Auth-Token": token}, timeout=30)
        assert (r.status_code, r.json()["error_code"]) == (400, "WKS.00010001"), r.text


def test_token_request_with_a_wrong_secret_is_401(key):
    r = issue_token(key.ak, "wrong", key.project_id)
    assert r.status_code == 401 and r.json()["error_code"] == "APIGW.0301"
    assert r.headers.get("X-Request-Id")


def signed_headers(method: str, path: str, body: bytes, key: Key) -> dict:
    """Signs a request as the SDK does (spec 2.5) with five headers, for raw requests."""
    h = {
        "content-type": "application/json",
        "host": urllib.parse.urlsplit(BASE).netloc,
        "user-agent": "huaweicloud-usdk-python/3.0",
        "x-project-id": key.project_id,
        "x-sdk-date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
    }
    names = sorted(h)
    canonical = "\n".join([
        method, path.rstrip("/") + "/", "",
        "".join(f"{n}:{h[n]}\n" for n in names), ";".join(names), hashlib.sha256(body).hexdigest(),
    ])
    to_sign = f"SDK-HMAC-SHA256\n{h['x-sdk-date']}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    sig = hmac.new(key.sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = f"SDK-HMAC-SHA256 Access={key.ak}, SignedHeaders={';'.join(names)}, Signature={sig}"
    return h


def test_a_signed_request_cannot_carry_another_body_whatever_payload_header_it_adds(key, ws, name):
    """The body-swap attack: a captured signed batch-create, its body replaced, with an unsigned
    X-Sdk-Content-Sha256 naming the original body's hash. The hash must be of the bytes sent."""
    path = f"/v2/{key.project_id}/users/batch-create"
    victim, evil = name(), name()
    body = json.dumps({"users": [{"user_name": victim, "user_email": f"{victim}@example.com"}]}).encode()
    h = signed_headers("POST", path, body, key)
    swapped = json.dumps({"users": [{"user_name": evil, "active_type": "ADMIN_ACTIVATE",
                                     "password": "Evil!Pass123"}]}).encode()
    for extra in ({}, {"X-Sdk-Content-Sha256": hashlib.sha256(body).hexdigest()},
                  {"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}):
        r = requests.post(BASE + path, data=swapped, headers={**h, **extra}, timeout=30)
        assert r.status_code == 401 and r.json()["error_code"] == "APIGW.0301", (extra, r.text)
    assert count_named(ws, evil) == 0
    r = requests.post(BASE + path, data=body, headers=h, timeout=30)
    assert r.status_code == 200, r.text
    assert count_named(ws, victim) == 1


def test_credentials_are_checked_before_the_project_header(key, name):
    """No credential, or a bad signature, is 401 even when X-Project-Id names another project."""
    path = f"/v2/{key.project_id}/users"
    r = requests.get(BASE + path, headers={"X-Project-Id": "a" * 32}, timeout=30)
    assert r.status_code == 401 and r.json()["error_code"] == "APIGW.0301", r.text
    bad = Key.__new__(Key)
    bad.ak, bad.sk, bad.project_id = key.ak, "x" * 40, key.project_id
    h = signed_headers("GET", path, b"", bad)
    h["x-project-id"] = "a" * 32
    r = requests.get(BASE + path, headers=h, timeout=30)
    assert r.status_code == 401 and r.json()["error_code"] == "APIGW.0301", r.text


def test_a_non_json_content_type_on_a_bodyless_call_verifies(ws):
    """With a Content-Type that is not JSON the SDK adds a signed `X-Sdk-Content-Sha256:
    UNSIGNED-PAYLOAD` and, the body being empty, signs the empty hash all the same."""
    r = ws.list_users_invoker(ListUsersRequest(limit="1")).add_header("Content-Type", "text/plain").invoke()
    assert r.status_code == 200


def test_a_body_the_sdk_signs_as_unsigned_payload_is_refused_and_writes_nothing(ws, name):
    """The same marker on a call with a body leaves the body unsigned: it is not acted on."""
    n = name()
    req = BatchCreateUsersRequest(body=BatchCreateUsersReq(users=[CreateUserRequest(user_name=n, user_email=f"{n}@example.com")]))
    err = fails(lambda: ws.batch_create_users_invoker(req).add_header("Content-Type", "text/plain").invoke(),
                401, "APIGW.0301")
    assert "UNSIGNED-PAYLOAD" in err.error_msg
    assert count_named(ws, n) == 0


@pytest.mark.parametrize("user_agent", ["café", "客户端"])
def test_a_non_ascii_user_agent_is_signed_and_verified_as_its_utf8_bytes(key, name, user_agent):
    """The SDK signs `HttpConfig.user_agent` as text and sends its UTF-8 bytes."""
    cfg = HttpConfig.get_default_config()
    cfg.user_agent = user_agent
    c = (WorkspaceClient.new_builder().with_http_config(cfg)
         .with_credentials(BasicCredentials(key.ak, key.sk, key.project_id)).with_endpoint(BASE).build())
    assert c.list_users(ListUsersRequest(limit="1")).status_code == 200
    n = name()
    create(c, CreateUserRequest(user_name=n, user_email=f"{n}@example.com"))
    assert count_named(c, n) == 1


def test_a_json_array_in_place_of_the_body_object_is_refused_and_writes_nothing(key, ws, name):
    """serde would fill the request from an array by position; Workspace's bodies are objects."""
    path = f"/v2/{key.project_id}/users/batch-create"
    n = name()
    user = {"user_name": n, "active_type": "USER_ACTIVATE", "user_email": f"{n}@example.com"}
    for body in ([[user]], {"users": [[n, f"{n}@example.com", None, "USER_ACTIVATE"]]}):
        raw = json.dumps(body).encode()
        r = requests.post(BASE + path, data=raw, headers=signed_headers("POST", path, raw, key), timeout=30)
        assert r.status_code == 400 and r.json()["error_code"] == "WKS.00010001", (body, r.text)
    assert count_named(ws, n) == 0
    path = f"/v2/{key.project_id}/groups"
    g = name("g")
    raw = json.dumps([g, "LOCAL", "array group"]).encode()
    r = requests.post(BASE + path, data=raw, headers=signed_headers("POST", path, raw, key), timeout=30)
    assert r.status_code == 400 and r.json()["error_code"] == "WKS.00010001", r.text
    assert ws.list_user_groups(ListUserGroupsRequest(keyword=g)).total_count == 0


def test_a_token_request_that_is_an_array_is_refused(key):
    identity = {"methods": ["hw_ak_sk"], "hw_ak_sk": {"access": {"key": key.ak}, "secret": {"key": key.sk}}}
    scope = {"project": {"id": key.project_id}}
    for body in ([{"identity": identity, "scope": scope}], {"auth": [identity, scope]}):
        r = requests.post(f"{BASE}/v3/auth/tokens", data=json.dumps(body), timeout=30)
        assert r.status_code == 400 and r.json()["error_code"] == "WKS.00010001", (body, r.text)
        assert "X-Subject-Token" not in r.headers
    r = requests.post(f"{BASE}/v3/auth/tokens", data=json.dumps({"auth": {"identity": identity, "scope": scope}}),
                      timeout=30)
    assert r.status_code == 201, r.text


# ------------------------------------------------------------------------- batch-create

def test_zero_and_201_users_are_refused(ws, name):
    fails(lambda: create(ws), 400, "WKS.00010001")
    users = [CreateUserRequest(user_name=name(), user_email=f"m{i}@example.com") for i in range(201)]
    fails(lambda: create(ws, *users), 400, "WKS.00010001")


def test_two_hundred_users_is_the_limit_and_works(ws, name):
    users = [CreateUserRequest(user_name=name("b"), user_email=f"{uuid.uuid4().hex[:12]}@example.com") for _ in range(200)]
    create(ws, *users)
    assert ws.list_users(ListUsersRequest(user_names=[u.user_name for u in users[:3]])).total_count == 3


def test_duplicate_user_name_in_one_request_any_case_rejects_all(ws, name):
    n, other = name(), name()
    err = fails(lambda: create(ws, CreateUserRequest(user_name=other, user_email=f"{other}@example.com"),
                               CreateUserRequest(user_name=n, user_email=f"{n}@example.com"),
                               CreateUserRequest(user_name=n.upper(), user_email=f"x{n}@example.com")),
                400, "WKS.00010002")
    assert "users[2]" in err.error_msg
    assert count_named(ws, other) == 0, "all-or-nothing"


def test_a_name_repeated_in_a_batch_is_refused_before_any_password_is_hashed(ws, name):
    """200 users with passwords whose last repeats the first: hashing 199 passwords (argon2id,
    about 20 ms each) came first and took seconds; the repeat is now found before that."""
    import time

    names = [name("h") for _ in range(199)]
    users = [CreateUserRequest(user_name=n, user_email=f"{n}@example.com", active_type="ADMIN_ACTIVATE",
                               password=f"Pw{i:04d}!xyzAB") for i, n in enumerate(names)]
    users.append(CreateUserRequest(user_name=names[0].upper(), user_email=f"z{names[0]}@example.com",
                                   active_type="ADMIN_ACTIVATE", password="Pw9999!xyzAB"))
    started = time.monotonic()
    err = fails(lambda: create(ws, *users), 400, "WKS.00010002")
    assert "users[199]" in err.error_msg
    assert time.monotonic() - started < 1.5, "the passwords were hashed first"
    assert count_named(ws, names[1]) == 0


def test_duplicate_of_an_existing_user_name_any_case(ws, name):
    n = name()
    create(ws, CreateUserRequest(user_name=n, user_email=f"{n}@example.com"))
    fails(lambda: create(ws, CreateUserRequest(user_name=n.upper(), user_email=f"y{n}@example.com")), 400, "WKS.00010002")


@pytest.mark.parametrize("fields,code", [
    ({"user_email": "not-an-email"}, "WKS.00010005"),
    ({"user_email": None, "user_phone": "12345"}, "WKS.00010006"),
    ({"active_type": "ADMIN_ACTIVATE", "password": "short"}, "WKS.00010007"),
    ({"active_type": "ADMIN_ACTIVATE", "password": None}, "WKS.00010007"),
    ({"account_expires": "2025-13-01T00:00:00Z"}, "WKS.00010008"),
    ({"account_expires": "tomorrow"}, "WKS.00010008"),
    ({"group_ids": ["no-such-group"]}, "WKS.00010009"),
    ({"group_ids": []}, "WKS.00010001"),
    ({"description": "d" * 256}, "WKS.00010001"),
    ({"active_type": "SOMEBODY_ACTIVATE"}, "WKS.00010001"),
    ({"user_email": None}, "WKS.00010005"),
    ({"description": "a\x00b"}, "WKS.00010001"),
])
def test_bad_fields_reject_the_whole_request(ws, name, fields, code):
    good, bad = name(), name()
    base = {"user_name": bad, "user_email": f"{bad}@example.com"}
    base.update(fields)
    fails(lambda: create(ws, CreateUserRequest(user_name=good, user_email=f"{good}@example.com"),
                         CreateUserRequest(**base)), 400, code)
    assert count_named(ws, good) == 0


@pytest.mark.parametrize("user_name", ["1abc", "a" * 21, "has space", "bad!name"])
def test_user_name_rules(ws, user_name):
    fails(lambda: create(ws, CreateUserRequest(user_name=user_name, user_email="n@example.com")), 400, "WKS.00010010")


def test_both_expiry_formats_are_accepted(ws, name):
    a, b = name(), name()
    create(ws, CreateUserRequest(user_name=a, user_email=f"{a}@example.com", account_expires="2099-01-01T00:00:00Z"),
           CreateUserRequest(user_name=b, user_email=f"{b}@example.com", account_expires="2099-01-01T00:00:00.000Z"))
    users = ws.list_users(ListUsersRequest(user_names=[a, b])).users
    assert {u.account_expires for u in users} == {"2099-01-01T00:00:00Z"}


# --------------------------------------------------------------------- users and groups

def test_show_delete_and_batch_delete(ws, name):
    a, b, c = name(), name(), name()
    create(ws, *[CreateUserRequest(user_name=n, user_email=f"{n}@example.com") for n in (a, b, c)])
    ids = {u.user_name: u.id for u in ws.list_users(ListUsersRequest(user_names=[a, b, c])).users}
    detail = ws.list_user_detail(ListUserDetailRequest(user_id=ids[a])).user_detail
    assert detail.user_name == a and detail.user_email == f"{a}@example.com"
    ws.delete_user(DeleteUserRequest(user_id=ids[a]))
    fails(lambda: ws.list_user_detail(ListUserDetailRequest(user_id=ids[a])), 404, "WKS.00010012")
    fails(lambda: ws.delete_user(DeleteUserRequest(user_id=ids[a])), 404, "WKS.00010012")
    # One unknown id: nothing is deleted.
    fails(lambda: ws.batch_delete_user(BatchDeleteUserRequest(body=BatchDeleteUserReq(user_ids=[ids[b], "ou_" + "0" * 32]))),
          404, "WKS.00010012")
    assert count_named(ws, b) == 1
    ws.batch_delete_user(BatchDeleteUserRequest(body=BatchDeleteUserReq(user_ids=[ids[b], ids[c]])))
    assert ws.list_users(ListUsersRequest(user_names=[b, c])).total_count == 0
    fails(lambda: ws.batch_delete_user(BatchDeleteUserRequest(body=BatchDeleteUserReq(user_ids=[]))), 400, "WKS.00010001")


def test_list_filters_and_paging(ws, name):
    prefix = name("p")
    names = [f"{prefix}x{i}" for i in range(5)]
    create(ws, *[CreateUserRequest(user_name=n, user_email=f"{n}@example.com", description=f"pager {prefix}") for n in names])
    page = ws.list_users(ListUsersRequest(user_name=prefix, limit="2", offset="1"))
    assert page.total_count == 5 and len(page.users) == 2
    assert ws.list_users(ListUsersRequest(description=f"pager {prefix}")).total_count == 5
    assert ws.list_users(ListUsersRequest(user_name=prefix, active_type="ADMIN_ACTIVATE")).total_count == 0
    fails(lambda: ws.list_users(ListUsersRequest(limit="lots")), 400, "WKS.00010001")


def test_list_pages_follow_the_vendors_definitions(ws, name):
    """The SDK's models document the pages: users without a limit are all the matching ones;
    group members and groups take 2000 and 100 when the limit is absent or 0, and group
    members up to 10000."""
    prefix = name("q")
    gname = name("g")
    ws.create_user_group(CreateUserGroupRequest(body=CreateUserGroupReq(group_name=gname)))
    gid = ws.list_user_groups(ListUserGroupsRequest(keyword=gname)).user_groups[0].id
    names = [f"{prefix}x{i}" for i in range(12)]
    create(ws, *[CreateUserRequest(user_name=n, user_email=f"{n}@example.com", group_ids=[gid]) for n in names])
    every = ws.list_users(ListUsersRequest(user_name=prefix))
    assert (every.total_count, len(every.users)) == (12, 12)
    assert len(ws.list_users(ListUsersRequest(user_name=prefix, limit="0")).users) == 0
    of_group = lambda **kw: ws.list_users_of_group(ListUsersOfGroupRequest(group_id=gid, **kw))
    for kw in ({}, {"limit": 0}, {"limit": 10_000}):
        page = of_group(**kw)
        assert (page.total_count, len(page.users)) == (12, 12), kw
    assert len(of_group(limit=5).users) == 5
    fails(lambda: of_group(limit=10_001), 400, "WKS.00010001")
    for i in range(11):
        ws.create_user_group(CreateUserGroupRequest(body=CreateUserGroupReq(group_name=f"{gname}n{i}")))
    for limit in (None, "0"):
        page = ws.list_user_groups(ListUserGroupsRequest(keyword=gname, limit=limit))
        assert (page.total_count, len(page.user_groups)) == (12, 12), limit


def test_groups_create_list_members_delete(ws, name):
    gname = name("g")
    ws.create_user_group(CreateUserGroupRequest(body=CreateUserGroupReq(group_name=gname, platform_type="LOCAL", description="team")))
    groups = ws.list_user_groups(ListUserGroupsRequest(keyword=gname)).user_groups
    assert len(groups) == 1 and groups[0].name == gname and groups[0].user_quantity == 0
    gid = groups[0].id
    fails(lambda: ws.create_user_group(CreateUserGroupRequest(body=CreateUserGroupReq(group_name=gname.upper()))), 400, "WKS.00010014")
    m = name()
    create(ws, CreateUserRequest(user_name=m, user_email=f"{m}@example.com", group_ids=[gid]))
    members = ws.list_users_of_group(ListUsersOfGroupRequest(group_id=gid))
    assert members.total_count == 1 and members.users[0].user_name == m
    assert ws.list_users(ListUsersRequest(group_name=gname)).total_count == 1
    assert ws.list_users(ListUsersRequest(user_names=[m])).users[0].group_names == [gname]
    fails(lambda: ws.delete_user_group(DeleteUserGroupRequest(group_id=gid)), 400, "WKS.00010015")
    uid = members.users[0].id
    ws.delete_user(DeleteUserRequest(user_id=uid))
    ws.delete_user_group(DeleteUserGroupRequest(group_id=gid))
    fails(lambda: ws.delete_user_group(DeleteUserGroupRequest(group_id=gid)), 404, "WKS.00010013")
    fails(lambda: ws.list_users_of_group(ListUsersOfGroupRequest(group_id=gid)), 404, "WKS.00010013")


def test_two_hundred_admin_activated_users_get_argon2id_passwords(ws, name, capsys):
    import time

    users = [CreateUserRequest(user_name=name("a"), active_type="ADMIN_ACTIVATE", password=f"Pw{i:04d}!xyz",
                               user_phone=phone()) for i in range(200)]
    started = time.monotonic()
    create(ws, *users)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n    batch-create of 200 ADMIN_ACTIVATE users (argon2id each): {elapsed:.2f} s")
    listed = ws.list_users(ListUsersRequest(user_names=[u.user_name for u in users[:5]]))
    assert listed.total_count == 5 and all(u.active_type == "ADMIN_ACTIVATE" for u in listed.users)
    # Every password is stored as its own salted argon2id hash, never as sent.
    hashes = stored_password_hashes([u.user_name for u in users])
    assert all(h and h.startswith("$argon2id$") for h in hashes.values()), hashes
    assert len(set(hashes.values())) == 200
    assert not any(u.password in h for u, h in zip(users, (hashes[u.user_name.lower()] for u in users)))


def test_a_directory_user_without_a_login_is_listed_and_found_under_its_user_id(ws, tmp_path):
    # A user created through another dialect (here the bulk import, tenant 1) has no
    # Workspace user name and is shown under its user id; the name filters must find it
    # under that same name.
    uid = f"dir{uuid.uuid4().hex[:10]}"
    rows = tmp_path / "one.csv"
    rows.write_text(f"name,user_id,mobile\nDirectory user,{uid},+86136{random.randint(0, 10**8 - 1):08d}\n")
    roster("import", str(rows), "--tenant", "1")
    listed = ws.list_users(ListUsersRequest(user_names=[uid.upper()]))
    assert listed.total_count == 1, listed
    assert listed.users[0].user_name == uid
    assert ws.list_users(ListUsersRequest(user_name=uid[:6].upper())).total_count >= 1
    # That name is taken: a Workspace user may not claim it, in any case.
    fails(lambda: create(ws, CreateUserRequest(user_name=uid.upper(), user_email=f"{uid}@example.com")),
          400, "WKS.00010002")
    assert ws.list_users(ListUsersRequest(user_names=[uid])).total_count == 1


def test_a_workspace_user_s_name_is_its_user_id_too(ws, name):
    # A Workspace user's login name is also its user id, so no user of another dialect
    # can be listed under the same name.
    n = name()
    create(ws, CreateUserRequest(user_name=n, user_email=f"{n}@example.com"))
    listed = ws.list_users(ListUsersRequest(user_names=[n])).users[0]
    assert listed.sid == n


def test_group_member_lists_apply_every_filter_and_other_platforms_match_nothing(ws, name):
    gname = name("g")
    ws.create_user_group(CreateUserGroupRequest(body=CreateUserGroupReq(group_name=gname)))
    gid = ws.list_user_groups(ListUserGroupsRequest(keyword=gname)).user_groups[0].id
    a, b = name(), name()
    create(ws,
           CreateUserRequest(user_name=a, user_email=f"{a}@example.com", group_ids=[gid], description="alpha",
                             active_type="ADMIN_ACTIVATE", password="Pw0001!xyzAB"),
           CreateUserRequest(user_name=b, user_email=f"{b}@example.com", group_ids=[gid], description="beta"))
    of_group = lambda **kw: ws.list_users_of_group(ListUsersOfGroupRequest(group_id=gid, **kw))
    assert of_group().total_count == 2
    for kw in ({"user_names": [a]}, {"description": "alph"}, {"active_type": "ADMIN_ACTIVATE"}):
        page = of_group(**kw)
        assert (page.total_count, [u.user_name for u in page.users]) == (1, [a]), kw
    fails(lambda: of_group(active_type="SOMETIMES"), 400, "WKS.00010001")
    # Roster's users and groups are all LOCAL.
    groups = lambda types: ws.list_user_groups(ListUserGroupsRequest(keyword=gname, platform_type=types)).total_count
    assert groups(["LOCAL"]) == 1
    assert groups(["AD", "LOCAL"]) == 1
    assert groups(["AD"]) == 0
    fails(lambda: groups(["LDAP"]), 400, "WKS.00010001")


def test_a_group_named_twice_is_joined_once(ws, name):
    gname = name("g")
    ws.create_user_group(CreateUserGroupRequest(body=CreateUserGroupReq(group_name=gname)))
    gid = ws.list_user_groups(ListUserGroupsRequest(keyword=gname)).user_groups[0].id
    u = name()
    create(ws, CreateUserRequest(user_name=u, user_email=f"{u}@example.com", group_ids=[gid, gid, gid]))
    assert ws.list_users(ListUsersRequest(user_names=[u])).users[0].group_names == [gname]


def test_a_read_only_key_is_refused_before_its_request_is_checked_or_hashed(name):
    ro = Key(scopes="contact:read")
    c = client(ro.ak, ro.sk, ro.project_id)
    n = name()
    # A bad item would be a 400 for a key that may write: the permission comes first.
    fails(lambda: create(c, CreateUserRequest(user_name="1bad", user_email="x@example.com")), 403, "APIGW.0302")
    fails(lambda: create(c, *[CreateUserRequest(user_name=f"{n}{i}", user_phone=phone(), active_type="ADMIN_ACTIVATE",
                                                password=f"Pw{i:04d}!xyzAB") for i in range(3)]), 403, "APIGW.0302")
    fails(lambda: c.batch_delete_user(BatchDeleteUserRequest(body=BatchDeleteUserReq(user_ids=["ou_" + "0" * 32]))),
          403, "APIGW.0302")
    # One delete as well: whether the id exists is not told to a key that may not write.
    fails(lambda: c.delete_user(DeleteUserRequest(user_id="ou_" + "0" * 32)), 403, "APIGW.0302")
    assert c.list_users(ListUsersRequest(user_names=[f"{n}0"])).total_count == 0


def test_overlapping_batch_deletes_both_succeed_and_delete_everything(ws, name):
    import threading

    mine, theirs, shared = [name() for _ in range(10)], [name() for _ in range(10)], name()
    everyone = mine + theirs + [shared]
    create(ws, *[CreateUserRequest(user_name=n, user_email=f"{n}@example.com") for n in everyone])
    ids = {u.user_name: u.id for u in ws.list_users(ListUsersRequest(user_names=everyone, limit="100")).users}
    errors = []

    def delete(names):
        try:
            ws.batch_delete_user(BatchDeleteUserRequest(body=BatchDeleteUserReq(user_ids=[ids[n] for n in names])))
        except exceptions.ClientRequestException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=delete, args=(group + [shared],)) for group in (mine, theirs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each call found every id it named; one losing the shared user to the other must not
    # answer 404 after deleting the rest of its own.
    assert errors == []
    assert ws.list_users(ListUsersRequest(user_names=everyone, limit="100")).total_count == 0
