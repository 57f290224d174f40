"""Quick BI through the official SDK: both signatures, every auth failure, BatchAddFeishuUsers
per-entry and whole-request outcomes, and the member and group actions around it."""

import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, urlencode

import pytest
import requests
from alibabacloud_quickbi_public20220101 import models as m
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException

from conftest import BASE, BIN, Directory, client, create_key

GlobalParameters = open_api_models.GlobalParameters


def utc(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def add(c, users: dict, **kw):
    kw.setdefault("is_admin", False)
    kw.setdefault("is_auth_admin", False)
    kw.setdefault("user_type", 1)
    return c.batch_add_feishu_users(
        m.BatchAddFeishuUsersRequest(feishu_users=json.dumps(users), **kw)
    )


def fail_codes(body) -> dict:
    out = {}
    for fr in body.result.fail_results or []:
        for fi in fr.fail_infos:
            out[fi.input] = fi.code
    return out


def expect_error(fn, status: int, code: str) -> ClientException:
    with pytest.raises(ClientException) as info:
        fn()
    e = info.value
    assert (e.status_code, e.code) == (status, code), (e.status_code, e.code, e.message)
    assert e.request_id and e.request_id != "None"
    return e


# ----------------------------------------------------------------------------- signatures


def test_acs3_batch_add_adds_directory_users_by_open_union_and_user_id(qb, directory):
    a, b, c = directory.user(), directory.user(), directory.user()
    r = add(qb, {a["open_id"]: "Alice", b["union_id"]: "Bob", c["user_id"]: ""})
    assert r.status_code == 200
    assert r.body.success is True and r.body.request_id
    assert (r.body.result.ok_count, r.body.result.fail_count) == (3, 0)
    assert not r.body.result.fail_results
    info = qb.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest(user_id=c["open_id"]))
    # An empty nickname falls back to the directory name.
    assert info.body.result.nick_name == c["name"]
    assert info.body.result.account_id == c["user_id"]
    assert info.body.result.email == c["email"]


def test_legacy_rpc_signature_is_accepted(qb_v2, directory):
    u = directory.user()
    r = add(qb_v2, {u["open_id"]: "Legacy"}, user_type=3, is_auth_admin=True)
    assert (r.body.result.ok_count, r.body.result.fail_count) == (1, 0)
    info = qb_v2.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest(user_id=u["open_id"]))
    assert info.body.result.user_type == 3
    assert info.body.result.auth_admin_user is True
    assert info.body.result.admin_user is False


def test_unknown_access_key_is_not_found(key):
    for extra in ({}, {"signature_algorithm": "v2"}):
        c = client("LTAInotAKeyThatExists000", key[1], **extra)
        expect_error(
            lambda: c.check_organization_member(m.CheckOrganizationMemberRequest(user_id="ou_x")),
            404,
            "InvalidAccessKeyId.NotFound",
        )


def test_wrong_secret_does_not_match(key):
    for extra in ({}, {"signature_algorithm": "v2"}):
        c = client(key[0], "wrong" + key[1][5:], **extra)
        e = expect_error(
            lambda: c.check_organization_member(m.CheckOrganizationMemberRequest(user_id="ou_x")),
            400,
            "SignatureDoesNotMatch",
        )
        assert "code: 400" in e.message


def test_stale_or_future_timestamp_is_refused(key):
    for delta in (timedelta(minutes=-16), timedelta(minutes=16)):
        c = client(*key, global_parameters=GlobalParameters(headers={"x-acs-date": utc(delta)}))
        expect_error(
            lambda: c.check_organization_member(m.CheckOrganizationMemberRequest(user_id="ou_x")),
            400,
            "InvalidTimeStamp.Expired",
        )
        v2 = client(
            *key,
            signature_algorithm="v2",
            global_parameters=GlobalParameters(queries={"Timestamp": utc(delta)}),
        )
        expect_error(
            lambda: v2.check_organization_member(m.CheckOrganizationMemberRequest(user_id="ou_x")),
            400,
            "InvalidTimeStamp.Expired",
        )
    # Within the window is fine.
    c = client(*key, global_parameters=GlobalParameters(headers={"x-acs-date": utc(timedelta(minutes=-10))}))
    assert c.check_organization_member(m.CheckOrganizationMemberRequest(user_id="ou_x")).body.result is False


def test_replayed_nonce_is_refused_for_both_signatures(key):
    nonce = secrets.token_hex(16)
    c = client(*key, global_parameters=GlobalParameters(headers={"x-acs-signature-nonce": nonce}))
    req = m.CheckOrganizationMemberRequest(user_id="ou_x")
    assert c.check_organization_member(req).status_code == 200
    expect_error(lambda: c.check_organization_member(req), 400, "SignatureNonceUsed")

    nonce = secrets.token_hex(16)
    v2 = client(
        *key,
        signature_algorithm="v2",
        global_parameters=GlobalParameters(queries={"SignatureNonce": nonce}),
    )
    assert v2.check_organization_member(req).status_code == 200
    expect_error(lambda: v2.check_organization_member(req), 400, "SignatureNonceUsed")


def test_an_unsigned_action_header_cannot_redirect_a_legacy_rpc_request(key, qb, directory):
    # Under the RPC signature only the parameters are signed, so an x-acs-action header
    # naming another action must not choose what runs (it would turn a signed read into a
    # delete); the two disagreeing is refused and the member stays.
    u = directory.user()
    assert add(qb, {u["open_id"]: "Stays"}).body.result.ok_count == 1
    v2 = client(
        *key,
        signature_algorithm="v2",
        global_parameters=GlobalParameters(headers={"x-acs-action": "DeleteUser"}),
    )
    req = m.CheckOrganizationMemberRequest(user_id=u["open_id"])
    e = expect_error(lambda: v2.check_organization_member(req), 400, "InvalidParameter")
    assert "x-acs-action" in e.message
    assert qb.check_organization_member(req).body.result is True


def test_rotating_the_key_app_secret_retires_the_old_access_key_secret(tenant):
    from conftest import _field, roster

    out = roster(
        "app", "create", "--tenant", str(tenant), "--kind", "alibaba",
        "--name", "rotated", "--scopes", "contact:read",
    )
    app_id, ak, old = (_field(out, f) for f in ("app_id", "access_key_id", "access_key_secret"))
    req = m.CheckOrganizationMemberRequest(user_id="ou_x")
    assert client(ak, old).check_organization_member(req).status_code == 200
    out = roster("app", "rotate-secret", app_id)
    assert _field(out, "access_key_id") == ak, "the key id stays"
    new = _field(out, "access_key_secret")
    assert new != old
    for extra in ({}, {"signature_algorithm": "v2"}):
        expect_error(
            lambda: client(ak, old, **extra).check_organization_member(req),
            400,
            "SignatureDoesNotMatch",
        )
        assert client(ak, new, **extra).check_organization_member(req).status_code == 200


def acs3_headers(key, action: str, query: str, host: str, body: bytes = b"") -> dict:
    """Signs like the SDK (spec 3.4), so that the exact bytes can be replayed or tampered."""
    h = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": "2022-01-01",
        "x-acs-date": utc(),
        "x-acs-signature-nonce": secrets.token_hex(16),
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    if body:
        h["content-type"] = "application/x-www-form-urlencoded"
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    cq = "&".join(f"{k}={quote(v, safe='~')}" for k, v in pairs)
    names = sorted(h)
    ch = "".join(f"{n}:{h[n].strip()}\n" for n in names)
    creq = f"POST\n/\n{cq}\n{ch}\n{';'.join(names)}\n{h['x-acs-content-sha256']}"
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(creq.encode()).hexdigest()
    sig = hmac.new(key[1].encode(), sts.encode(), hashlib.sha256).hexdigest()
    h["Authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={key[0]},SignedHeaders={';'.join(names)},Signature={sig}"
    )
    return h


def test_a_replayed_raw_request_is_refused_and_a_tampered_one_does_not_match(key):
    host = BASE.split("//", 1)[1]
    h = acs3_headers(key, "CheckOrganizationMember", "UserId=ou_y", host)
    first = requests.post(f"{BASE}/?UserId=ou_y", headers=h, timeout=30)
    assert first.status_code == 200, first.text
    assert first.json()["Result"] is False
    again = requests.post(f"{BASE}/?UserId=ou_y", headers=h, timeout=30)
    assert again.status_code == 400 and again.json()["Code"] == "SignatureNonceUsed"

    h = acs3_headers(key, "CheckOrganizationMember", "UserId=ou_y", host)
    tampered = requests.post(f"{BASE}/?UserId=ou_z", headers=h, timeout=30)
    assert tampered.status_code == 400 and tampered.json()["Code"] == "SignatureDoesNotMatch"
    # The refused request did not use up its nonce: the genuine one still works.
    genuine = requests.post(f"{BASE}/?UserId=ou_y", headers=h, timeout=30)
    assert genuine.status_code == 200, genuine.text

    h = acs3_headers(key, "CheckOrganizationMember", "UserId=ou_y", host)
    h["x-acs-action"] = "DeleteUser"
    swapped = requests.post(f"{BASE}/?UserId=ou_y", headers=h, timeout=30)
    assert swapped.status_code == 400 and swapped.json()["Code"] == "SignatureDoesNotMatch"

    h = acs3_headers(key, "CheckOrganizationMember", "UserId=ou_y", host)
    h["Authorization"] = h["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    unsigned_host = requests.post(f"{BASE}/?UserId=ou_y", headers=h, timeout=30)
    assert unsigned_host.status_code == 400
    assert unsigned_host.json()["Code"] == "IncompleteSignature"


def test_form_body_parameters_are_read_and_covered_by_the_payload_hash(qb, key, directory):
    """Actions with body parameters send them form-encoded (spec 3.2, AddUser's RoleIds)."""
    host = BASE.split("//", 1)[1]
    gid = qb.create_user_group(
        m.CreateUserGroupRequest(user_group_name="form-" + secrets.token_hex(3))
    ).body.result
    u = directory.user()
    add(qb, {u["open_id"]: "Form"})
    query = f"UserId={u['open_id']}"
    body = f"UserGroupIds={gid}".encode()
    h = acs3_headers(key, "AddUserGroupMembers", query, host, body)
    r = requests.post(f"{BASE}/?{query}", headers=h, data=body, timeout=30)
    assert r.status_code == 200 and r.json()["Result"] is True, r.text
    groups = qb.list_user_groups_by_user_id(
        m.ListUserGroupsByUserIdRequest(user_id=u["open_id"])
    ).body.result
    assert [g.usergroup_id for g in groups] == [gid]
    # A body changed after signing no longer matches its hash.
    h = acs3_headers(key, "AddUserGroupMembers", query, host, body)
    r = requests.post(f"{BASE}/?{query}", headers=h, data=b"UserGroupIds=other", timeout=30)
    assert r.status_code == 400 and r.json()["Code"] == "SignatureDoesNotMatch"


def test_escapes_that_are_not_utf8_are_refused_and_change_nothing(qb, key, directory):
    """`%FF` is no UTF-8: read leniently it became U+FFFD, was stored as the nickname and
    matched every other such escape. In the query or the form body it is InvalidParameter."""
    host = BASE.split("//", 1)[1]
    u = directory.user()
    add(qb, {u["open_id"]: "Plain"})
    query = f"UserId={u['open_id']}"
    body = b"NickName=%FFab"
    h = acs3_headers(key, "UpdateUser", query, host, body)
    r = requests.post(f"{BASE}/?{query}", headers=h, data=body, timeout=30)
    assert r.status_code == 400 and r.json()["Code"] == "InvalidParameter", r.text
    query = f"UserId={u['open_id']}&NickName=%FFcd"
    h = acs3_headers(key, "UpdateUser", query, host)
    r = requests.post(f"{BASE}/?{query}", headers=h, timeout=30)
    assert r.status_code == 400 and r.json()["Code"] == "InvalidParameter", r.text
    info = qb.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest(user_id=u["open_id"])).body.result
    assert info.nick_name == "Plain"


def test_a_full_batch_of_the_longest_legal_entries_is_accepted_as_a_form_body(key, qb, directory):
    """1 000 entries (the most allowed), each a 64-character id (the longest user id) and a
    100-character nickname (the longest), escaped by json.dumps as \\uXXXX (an emoji as two),
    as a signed form body: about 1.8 MB. It used to be refused at 256 KiB per parameter."""
    host = BASE.split("//", 1)[1]
    real = [directory.user() for _ in range(3)]
    cjk = "".join(chr(0x4E00 + i) for i in range(100))
    users = {u["open_id"]: cjk for u in real}
    for i in range(1000 - len(real)):
        users[f"{i:04d}" + "@" * 60] = "\U0001F600" * 100
    body = urlencode({"FeishuUsers": json.dumps(users), "IsAdmin": "False", "IsAuthAdmin": "False",
                      "UserType": "1"}).encode()
    assert len(body) > 1024 * 1024
    h = acs3_headers(key, "BatchAddFeishuUsers", "", host, body)
    r = requests.post(f"{BASE}/", headers=h, data=body, timeout=120)
    assert r.status_code == 200, r.text[:500]
    result = r.json()["Result"]
    assert (result["OkCount"], result["FailCount"]) == (3, 997)
    codes = {fr["FailInfos"][0]["Code"] for fr in result["FailResults"]}
    assert codes == {"Feishu.User.Need.Sync.Contact"}
    info = qb.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest(user_id=real[0]["open_id"]))
    assert info.body.result.nick_name == cjk


def test_a_parameter_longer_than_any_legal_one_is_parameter_length_exceed(key):
    host = BASE.split("//", 1)[1]
    # Whitespace is legal JSON, but no legal FeishuUsers is this long (1 280 016 bytes at most).
    padded = '{"ou_x": "x"' + " " * 1_280_010 + "}"
    body = urlencode({"FeishuUsers": padded, "UserType": "1"}).encode()
    h = acs3_headers(key, "BatchAddFeishuUsers", "", host, body)
    r = requests.post(f"{BASE}/", headers=h, data=body, timeout=120)
    assert r.status_code == 400 and r.json()["Code"] == "Parameter.Length.Exceed", r.text[:500]
    assert "FeishuUsers" in r.json()["Message"]


def test_unsigned_and_malformed_requests_answer_in_the_json_envelope():
    r = requests.post(f"{BASE}/", timeout=30)
    assert r.status_code == 400 and r.json()["Code"] == "MissingParameter"
    r = requests.post(
        f"{BASE}/?Action=QueryUserList&Version=2022-01-01", timeout=30
    )
    assert r.status_code == 400 and r.json()["Code"] == "MissingParameter"
    assert "AccessKeyId" in r.json()["Message"]
    # A legacy RPC request that names its key but is not signed misses the signature.
    r = requests.post(
        f"{BASE}/?Action=QueryUserList&Version=2022-01-01&AccessKeyId=LTAIsomething&"
        "SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce=n1&Timestamp=2026-01-01T00%3A00%3A00Z",
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["Code"] == "MissingParameter"
    assert '"Signature"' in r.json()["Message"], r.text
    r = requests.post(
        f"{BASE}/",
        headers={"x-acs-action": "QueryUserList", "x-acs-version": "2022-01-01",
                 "Authorization": "ACS3-HMAC-SHA256 nonsense"},
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["Code"] == "IncompleteSignature"
    r = requests.post(
        f"{BASE}/", headers={"x-acs-action": "QueryUserList", "x-acs-version": "2019-01-01"}, timeout=30
    )
    assert r.status_code == 400 and r.json()["Code"] == "InvalidVersion"
    assert set(r.json()) == {"RequestId", "Code", "Message"}
    # Other paths are not Quick BI's: they still get their own dialect's 404.
    r = requests.get(f"{BASE}/no/such/path", timeout=30)
    assert r.status_code == 404 and "code" in r.json()
    assert requests.get(f"{BASE}/healthz", timeout=30).status_code == 200


def test_unknown_action_is_not_found(qb):
    expect_error(
        lambda: qb.query_workspace_user_list(qb_models_workspace()),
        404,
        "InvalidAction.NotFound",
    )


def qb_models_workspace():
    return m.QueryWorkspaceUserListRequest(workspace_id="w1", page_num=1, page_size=10)


def test_read_only_key_cannot_write(tenant, directory):
    c = client(*create_key(tenant, "contact:read"))
    u = directory.user()
    expect_error(lambda: add(c, {u["open_id"]: "X"}), 403, "Forbidden.RAM")
    assert c.check_organization_member(
        m.CheckOrganizationMemberRequest(user_id=u["open_id"])
    ).body.result is False


# ------------------------------------------------------------------ BatchAddFeishuUsers


def test_per_entry_failures_keep_counts_equal_to_entries(qb, directory):
    ok, member, bare = directory.user(), directory.user(), directory.user(email=False, mobile=False)
    add(qb, {member["open_id"]: "Already"})
    entries = {
        ok["open_id"]: "Fine",
        member["open_id"]: "Again",
        bare["open_id"]: "No contact",
        "ou_" + "0" * 32: "Nobody",
        "no-such-user-id": "Nobody either",
    }
    r = add(qb, entries)
    res = r.body.result
    assert res.ok_count + res.fail_count == len(entries)
    assert (res.ok_count, res.fail_count) == (1, 4)
    assert fail_codes(r.body) == {
        member["open_id"]: "ACCOUNT_EXIST",
        bare["open_id"]: "Mail.Invalid",
        "ou_" + "0" * 32: "Feishu.User.Need.Sync.Contact",
        "no-such-user-id": "Feishu.User.Need.Sync.Contact",
    }
    for fr in res.fail_results:
        assert fr.fail_infos[0].code_desc


def test_the_same_user_twice_in_one_request_is_added_once(qb, directory):
    u = directory.user()
    r = add(qb, {u["open_id"]: "A", u["user_id"]: "B"})
    assert (r.body.result.ok_count, r.body.result.fail_count) == (1, 1)
    assert list(fail_codes(r.body).values()) == ["ACCOUNT_EXIST"]
    # A key repeated in the JSON text is two entries, as the client wrote them.
    v = directory.user()
    raw = '{"%s": "first", "%s": "second"}' % (v["open_id"], v["open_id"])
    r = qb.batch_add_feishu_users(m.BatchAddFeishuUsersRequest(feishu_users=raw, user_type=1))
    assert (r.body.result.ok_count, r.body.result.fail_count) == (1, 1)
    info = qb.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest(user_id=v["open_id"]))
    assert info.body.result.nick_name == "first"


def test_whole_request_failures_add_nobody(qb, directory):
    u = directory.user()
    cases = [
        (dict(user_group_ids="no-such-group"), "Usergroup.Not.Exist"),
        (dict(user_type=2, is_admin=True), "Viewer.CannotHave.CustomRole"),
        (dict(user_type=2, is_auth_admin=True), "Viewer.CannotHave.CustomRole"),
        (dict(user_type=3, is_admin=True), "UserAnalyst.NotSupport.ThisRole"),
    ]
    for kw, code in cases:
        e = expect_error(lambda: add(qb, {u["open_id"]: "X"}, **kw), 400, code)
        assert e.data["Code"] == code
    for bad in ("not json", "[1,2]", "{}", '{"ou_a": 5}'):
        expect_error(
            lambda: qb.batch_add_feishu_users(
                m.BatchAddFeishuUsersRequest(feishu_users=bad, user_type=1)
            ),
            400,
            "Feishu.Parameter.Error",
        )
    expect_error(
        lambda: add(qb, {u["open_id"]: "X"}, user_type=9), 400, "InvalidParameter"
    )
    # The NUL character, escaped in the FeishuUsers JSON or raw in a plain parameter.
    expect_error(lambda: add(qb, {u["open_id"]: "X\x00"}), 400, "InvalidParameter")
    expect_error(
        lambda: qb.create_user_group(m.CreateUserGroupRequest(user_group_name="g\x00")),
        400,
        "InvalidParameter",
    )
    assert qb.check_organization_member(
        m.CheckOrganizationMemberRequest(user_id=u["open_id"])
    ).body.result is False


@pytest.fixture(scope="module")
def capped_server():
    """A second roster whose BI organisation allows two members."""
    work = tempfile.mkdtemp(prefix="roster-quickbi-cap.")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    env.update(ROSTER_QUICKBI_MAX_MEMBERS="2", ROSTER_LOG="warn")
    if os.environ.get("SDK_PG_QBICAP"):  # a PostgreSQL run: this server's own database
        env["ROSTER_DATABASE_URL"] = os.environ["SDK_PG_QBICAP"]
    out = open(os.path.join(work, "stdout"), "w+")
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data")],
        stdout=out, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        base = None
        for _ in range(600):
            out.seek(0)
            text = out.read()
            m = re.search(r"roster listening on (http://\S+)", text)
            if m:
                base = m.group(1)
                break
            assert proc.poll() is None, text
            time.sleep(0.1)
        assert base, "the capped server did not start"
        app_id = re.search(r"app_id:\s*(\S+)", text).group(1)
        secret = re.search(r"app_secret:\s*(\S+)", text).group(1)
        yield base, app_id, secret, os.path.join(work, "data")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_licence_cap_refuses_the_whole_batch(capped_server, monkeypatch):
    import conftest

    base, app_id, secret, data = capped_server
    monkeypatch.setattr(conftest, "BASE", base)
    monkeypatch.setattr(conftest, "APP_ID", app_id)
    monkeypatch.setattr(conftest, "APP_SECRET", secret)
    monkeypatch.setattr(conftest, "DATA_DIR", data)
    monkeypatch.setattr(conftest, "ENDPOINT", base.split("//", 1)[1])
    c = conftest.client(*conftest.create_key(1))
    d = Directory.__new__(Directory)
    conftest.Directory.__init__(d)
    users = [d.user() for _ in range(3)]
    r = add(c, {users[0]["open_id"]: "One"})
    assert r.body.result.ok_count == 1
    e = expect_error(
        lambda: add(c, {users[1]["open_id"]: "Two", users[2]["open_id"]: "Three"}),
        400,
        "Instance.Over.MaxLicense",
    )
    assert "maximum number of users" in e.message
    for u in users[1:]:
        assert c.check_organization_member(
            m.CheckOrganizationMemberRequest(user_id=u["open_id"])
        ).body.result is False
    # Removing a member frees its licence.
    c.delete_user(m.DeleteUserRequest(user_id=users[0]["open_id"]))
    r = add(c, {users[1]["open_id"]: "Two", users[2]["open_id"]: "Three"})
    assert r.body.result.ok_count == 2


# ----------------------------------------------------------------------- groups, members


def test_groups_are_created_listed_and_joined(qb, directory):
    name = "eng-" + secrets.token_hex(3)
    gid = qb.create_user_group(
        m.CreateUserGroupRequest(user_group_name=name, user_group_description="Engineers",
                                  parent_user_group_id="-1")
    ).body.result
    assert isinstance(gid, str) and gid
    gid2 = qb.create_user_group(m.CreateUserGroupRequest(user_group_name=name + "-2")).body.result
    expect_error(
        lambda: qb.create_user_group(m.CreateUserGroupRequest(user_group_name=name.upper())),
        400,
        "Usergroup.Name.Duplicated",
    )
    expect_error(
        lambda: qb.create_user_group(
            m.CreateUserGroupRequest(user_group_name="x" + name, parent_user_group_id=gid)
        ),
        400,
        "InvalidParameter",
    )
    top = qb.query_user_group_list_by_parent_id(
        m.QueryUserGroupListByParentIdRequest(parent_user_group_id="-1")
    ).body.result
    mine = [g for g in top if g.user_group_id == gid]
    assert len(mine) == 1
    assert (mine[0].user_group_name, mine[0].user_group_description) == (name, "Engineers")
    assert mine[0].parent_user_group_id == "-1"
    assert qb.query_user_group_list_by_parent_id(
        m.QueryUserGroupListByParentIdRequest(parent_user_group_id=gid)
    ).body.result == []
    expect_error(
        lambda: qb.query_user_group_list_by_parent_id(
            m.QueryUserGroupListByParentIdRequest(parent_user_group_id="nope")
        ),
        400,
        "Usergroup.Not.Exist",
    )

    u = directory.user()
    r = add(qb, {u["open_id"]: "Grouped"}, user_group_ids=gid)
    assert r.body.result.ok_count == 1

    groups = qb.list_user_groups_by_user_id(
        m.ListUserGroupsByUserIdRequest(user_id=u["open_id"])
    ).body.result
    assert [g.usergroup_id for g in groups] == [gid]
    assert qb.add_user_group_members(
        m.AddUserGroupMembersRequest(user_id=u["open_id"], user_group_ids=f"{gid},{gid2}")
    ).body.result is True
    groups = qb.list_user_groups_by_user_id(
        m.ListUserGroupsByUserIdRequest(user_id=u["open_id"])
    ).body.result
    assert [g.usergroup_id for g in groups] == [gid, gid2]
    expect_error(
        lambda: qb.add_user_group_members(
            m.AddUserGroupMembersRequest(user_id=u["open_id"], user_group_ids="nope")
        ),
        400,
        "Usergroup.Not.Exist",
    )
    expect_error(
        lambda: qb.add_user_group_members(
            m.AddUserGroupMembersRequest(user_id="ou_" + "1" * 32, user_group_ids=gid)
        ),
        400,
        "User.Not.In.Organization",
    )


def test_a_group_takes_the_id_and_long_name_its_client_chose(qb, directory):
    """The SDK documents UserGroupId (unique in the organization, at most 64 characters, not
    -1) and names of up to 255 characters."""
    chosen = "sync." + secrets.token_hex(4)
    name = "名" * 250 + secrets.token_hex(2)
    gid = qb.create_user_group(
        m.CreateUserGroupRequest(user_group_name=name, user_group_id=chosen, parent_user_group_id="-1")
    ).body.result
    assert gid == chosen
    top = qb.query_user_group_list_by_parent_id(
        m.QueryUserGroupListByParentIdRequest(parent_user_group_id="-1")
    ).body.result
    assert [g.user_group_name for g in top if g.user_group_id == chosen] == [name]
    for bad in (chosen, "-1", "a,b", "..", "组" * 24, "x" * 65):
        expect_error(
            lambda: qb.create_user_group(
                m.CreateUserGroupRequest(user_group_name="other-" + secrets.token_hex(3), user_group_id=bad)
            ),
            400,
            "Parameter.Length.Exceed" if len(bad) > 64 else "InvalidParameter",
        )
    expect_error(
        lambda: qb.create_user_group(m.CreateUserGroupRequest(user_group_name="n" * 256)),
        400,
        "Parameter.Length.Exceed",
    )
    u = directory.user()
    assert add(qb, {u["open_id"]: "Chosen"}, user_group_ids=chosen).body.result.ok_count == 1


def test_members_are_listed_paged_queried_updated_and_deleted(qb, directory):
    tag = secrets.token_hex(3)
    users = [directory.user() for _ in range(3)]
    add(qb, {u["open_id"]: f"Pager {tag} {i}" for i, u in enumerate(users)})
    page1 = qb.query_user_list(m.QueryUserListRequest(keyword=f"pager {tag}", page_num=1, page_size=2))
    res = page1.body.result
    assert (res.total_num, res.total_pages, res.page_num, res.page_size) == (3, 2, 1, 2)
    page2 = qb.query_user_list(m.QueryUserListRequest(keyword=f"PAGER {tag}", page_num=2, page_size=2))
    seen = [d.user_id for d in res.data] + [d.user_id for d in page2.body.result.data]
    assert sorted(seen) == sorted(u["open_id"] for u in users)
    everyone = qb.query_user_list(m.QueryUserListRequest(page_num=1, page_size=1000)).body.result
    assert everyone.total_num >= 3
    expect_error(lambda: qb.query_user_list(m.QueryUserListRequest(page_num=0, page_size=10)),
                 400, "InvalidParameter")
    expect_error(lambda: qb.query_user_list(m.QueryUserListRequest(page_num=1, page_size=5000)),
                 400, "InvalidParameter")

    target = users[0]["open_id"]
    assert qb.check_organization_member(m.CheckOrganizationMemberRequest(user_id=target)).body.result is True
    assert qb.update_user(m.UpdateUserRequest(user_id=target, nick_name="Renamed", user_type=1,
                                               admin_user=True)).body.result is True
    info = qb.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest(user_id=target)).body.result
    assert (info.nick_name, info.user_type, info.admin_user) == ("Renamed", 1, True)
    assert -1 in info.role_id_list
    expect_error(lambda: qb.update_user(m.UpdateUserRequest(user_id=target, user_type=2)),
                 400, "Viewer.CannotHave.CustomRole")
    expect_error(lambda: qb.update_user(m.UpdateUserRequest(user_id=target, role_ids="1")),
                 400, "InvalidParameter")

    assert qb.delete_user(m.DeleteUserRequest(user_id=target)).body.result is True
    assert qb.check_organization_member(m.CheckOrganizationMemberRequest(user_id=target)).body.result is False
    expect_error(lambda: qb.delete_user(m.DeleteUserRequest(user_id=target)), 400, "User.Not.In.Organization")
    expect_error(lambda: qb.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest(user_id=target)),
                 400, "User.Not.In.Organization")
    # The directory user is still there and can join again.
    assert add(qb, {target: "Back"}).body.result.ok_count == 1
