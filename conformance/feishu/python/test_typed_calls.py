"""lark-oapi's typed methods against roster: bool query params sent as True/False, repeated-key
arrays, user create/get/patch/delete/resurrect (a body-less POST), and the lark-oapi model
parsing every response (objects/arrays where the models expect them)."""

from lark_oapi.api.contact.v3 import (
    BatchGetIdUserRequest,
    BatchGetIdUserRequestBody,
    BatchUserRequest,
    ChildrenDepartmentRequest,
    DeleteDepartmentRequest,
    DeleteUserRequest,
    DeleteUserRequestBody,
    FindByDepartmentUserRequest,
    GetDepartmentRequest,
    GetUserRequest,
    PatchUserRequest,
    ResurrectUserRequest,
    UpdateUserIdUserRequest,
    UpdateUserIdUserRequestBody,
    User,
    UserOrder,
)
from lark_oapi.api.passport.v1 import LogoutSessionRequest, LogoutSessionRequestBody

from conftest import OD_UNKNOWN, OU_UNKNOWN, check, mk_dept, mk_user


def get_user(client, user_id, user_id_type=None):
    b = GetUserRequest.builder().user_id(user_id)
    if user_id_type:
        b = b.user_id_type(user_id_type)
    return check(client.contact.v3.user.get(b.build()), f"get user {user_id}").data.user


def test_department_create_get(client, u):
    name = u.name("PyEng")
    d = mk_dept(client, u, name=name)
    got = check(
        client.contact.v3.department.get(GetDepartmentRequest.builder().department_id(d.open_department_id).build()),
        "get department",
    ).data.department
    assert got.name == name
    assert got.parent_department_id == "0"
    assert got.status.is_deleted is False


def test_children_fetch_child_true_is_sent_as_python_bool(client, u):
    top = mk_dept(client, u)
    a = mk_dept(client, u, parent=top.open_department_id)
    b = mk_dept(client, u, parent=top.open_department_id)
    a1 = mk_dept(client, u, parent=a.open_department_id)

    req = ChildrenDepartmentRequest.builder().department_id(top.open_department_id).fetch_child(True).page_size(50).build()
    assert ("fetch_child", "True") in req.queries, "lark-oapi sends str(True)"
    resp = check(client.contact.v3.department.children(req), "children fetch_child=True")
    got = sorted(d.open_department_id for d in resp.data.items)
    assert got == sorted([a.open_department_id, b.open_department_id, a1.open_department_id])
    assert resp.data.has_more is False

    req = ChildrenDepartmentRequest.builder().department_id(top.open_department_id).fetch_child(False).build()
    assert ("fetch_child", "False") in req.queries
    resp = check(client.contact.v3.department.children(req), "children fetch_child=False")
    assert sorted(d.open_department_id for d in resp.data.items) == sorted([a.open_department_id, b.open_department_id])


def test_department_list_is_children_by_query(client, u):
    """`department.list` (GET /departments?parent_department_id=, the legacy form of
    children) pages the same children, with fetch_child and department_id_type."""
    from lark_oapi.api.contact.v3 import ListDepartmentRequest

    top = mk_dept(client, u)
    a = mk_dept(client, u, parent=top.open_department_id)
    b = mk_dept(client, u, parent=top.open_department_id)
    a1 = mk_dept(client, u, parent=a.open_department_id)
    seen, token = [], None
    for _ in range(5):
        req = ListDepartmentRequest.builder().parent_department_id(top.open_department_id) \
            .fetch_child(True).page_size(2)
        if token:
            req = req.page_token(token)
        data = check(client.contact.v3.department.list(req.build()), "list").data
        seen += [d.open_department_id for d in data.items]
        if not data.has_more:
            break
        token = data.page_token
    assert sorted(seen) == sorted([a.open_department_id, b.open_department_id, a1.open_department_id])
    by_custom = check(client.contact.v3.department.list(
        ListDepartmentRequest.builder().parent_department_id(top.department_id)
        .department_id_type("department_id").build()), "list by department_id").data
    assert sorted(d.department_id for d in by_custom.items) == sorted([a.department_id, b.department_id])
    unknown = client.contact.v3.department.list(
        ListDepartmentRequest.builder().parent_department_id(OD_UNKNOWN).build())
    assert unknown.code == 40015


def walk_children(client, top, after_page=lambda page: None):
    """Every page of a department's children, two at a time; `after_page` runs between pages."""
    seen, token = [], None
    for _ in range(20):
        b = ChildrenDepartmentRequest.builder().department_id(top).page_size(2)
        if token:
            b = b.page_token(token)
        data = check(client.contact.v3.department.children(b.build()), "children page").data
        page = [d.open_department_id for d in data.items]
        seen += page
        if not data.has_more:
            return seen
        assert data.page_token
        token = data.page_token
        after_page(page)
    raise AssertionError(f"no end after 20 pages: {seen}")


def test_children_pagination_with_page_token(client, u):
    top = mk_dept(client, u)
    kids = {mk_dept(client, u, parent=top.open_department_id).open_department_id for _ in range(5)}
    seen = walk_children(client, top.open_department_id)
    assert len(seen) == len(set(seen))
    assert set(seen) == kids


def test_children_pages_go_on_after_the_last_item_of_a_page_is_deleted(client, u):
    """An SDK iterator walking children while departments are deleted sees none twice."""
    top = mk_dept(client, u)
    kids = [mk_dept(client, u, parent=top.open_department_id).open_department_id for _ in range(6)]

    def delete_last(page):
        check(client.contact.v3.department.delete(
            DeleteDepartmentRequest.builder().department_id(page[-1]).build()), "delete department")

    seen = walk_children(client, top.open_department_id, delete_last)
    assert sorted(seen) == sorted(kids), "every child once, none again"
    resp = client.contact.v3.department.children(
        ChildrenDepartmentRequest.builder().department_id(top.open_department_id).page_token("p1").build())
    assert resp.code == 40012, "a token this server never issued"


def test_department_create_replay_after_delete_answers_as_the_first_time(client, u):
    """Spec §2: the same client_token and body replay the original response (code 0, the same
    ids and data), even after the department was deleted."""
    import uuid as _uuid

    from lark_oapi.api.contact.v3 import CreateDepartmentRequest, Department

    token = _uuid.uuid4().hex
    body = Department.builder().name(u.name("Replay")).parent_department_id("0").build()
    req = lambda: CreateDepartmentRequest.builder().client_token(token).request_body(body).build()
    first = check(client.contact.v3.department.create(req()), "create").data.department
    check(client.contact.v3.department.delete(
        DeleteDepartmentRequest.builder().department_id(first.open_department_id).build()), "delete")
    again = check(client.contact.v3.department.create(req()), "replay").data.department
    assert again.open_department_id == first.open_department_id
    # The original response, as it was: not the department as the delete left it.
    assert again.status.is_deleted is False
    assert again.name == first.name


def test_department_create_replay_after_what_it_named_changed(client, u):
    """A retry of a create that succeeded is answered with its first answer even after the
    leader and HRBP it named were deleted and its parent (named by custom id) was renamed:
    the retry must not be judged against the directory as it is now."""
    import uuid as _uuid

    from lark_oapi.api.contact.v3 import (
        CreateDepartmentRequest,
        Department,
        UpdateDepartmentIdDepartmentRequest,
        UpdateDepartmentIdDepartmentRequestBody,
    )

    parent = mk_dept(client, u, department_id="P" + _uuid.uuid4().hex[:10])
    home = mk_dept(client, u)
    boss = mk_user(client, u, [home.open_department_id])
    hrbp = mk_user(client, u, [home.open_department_id])
    token = _uuid.uuid4().hex
    body = (Department.builder().name(u.name("Kept")).parent_department_id(parent.department_id)
            .leader_user_id(boss.open_id).department_hrbps([hrbp.open_id]).build())

    def create():
        return client.contact.v3.department.create(
            CreateDepartmentRequest.builder().client_token(token)
            .department_id_type("department_id").request_body(body).build())

    first = check(create(), "create").data.department
    for who in (boss, hrbp):
        check(client.contact.v3.user.delete(
            DeleteUserRequest.builder().user_id(who.open_id)
            .request_body(DeleteUserRequestBody.builder().build()).build()), "delete")
    check(client.contact.v3.department.update_department_id(
        UpdateDepartmentIdDepartmentRequest.builder().department_id(parent.open_department_id)
        .request_body(UpdateDepartmentIdDepartmentRequestBody.builder()
                      .new_department_id("R" + _uuid.uuid4().hex[:10]).build()).build()), "rename")
    again = check(create(), "replay").data.department
    assert again.open_department_id == first.open_department_id
    assert (again.leader_user_id, again.department_hrbps) == (boss.open_id, [hrbp.open_id])


def test_en_name_and_nickname_too_long_are_41071_and_41072(client, u):
    d = mk_dept(client, u)
    created = mk_user(client, u, [d.open_department_id])
    for field, code in (("en_name", 41071), ("nickname", 41072)):
        body = getattr(User.builder(), field)("e" * 256).build()
        resp = client.contact.v3.user.patch(
            PatchUserRequest.builder().user_id(created.open_id).request_body(body).build())
        assert resp.code == code, (field, resp.raw.content)


def test_join_time_and_custom_attrs_are_bounded(client, u):
    """What one door stores another reads back: join_time within 1900-9999 (the bulk
    import's range), at most 100 custom attributes of bounded size."""
    from lark_oapi.api.contact.v3 import CreateUserRequest, UserCustomAttr, UserCustomAttrValue

    d = mk_dept(client, u)

    def create(**fields):
        body = User.builder().name(u.name()).mobile(u.mobile()).department_ids([d.open_department_id])
        for k, v in fields.items():
            body = getattr(body, k)(v)
        return client.contact.v3.user.create(CreateUserRequest.builder().request_body(body.build()).build())

    assert create(join_time=9223372036854775807).code == 40001
    attr = lambda i, text="v": UserCustomAttr.builder().type("TEXT").id(f"C-{i}").value(
        UserCustomAttrValue.builder().text(text).build()).build()
    assert create(custom_attrs=[attr(i) for i in range(101)]).code == 40001
    assert create(custom_attrs=[attr(1, "x" * 1025)]).code == 40001
    ok = create(join_time=1_534_204_800, custom_attrs=[attr(i) for i in range(100)])
    assert ok.code == 0 and len(ok.data.user.custom_attrs) == 100, ok.raw.content


def test_patch_cannot_clear_the_mobile(client, u):
    """U1 refuses a user without a mobile (41010), and U9 validates as U1 does."""
    d = mk_dept(client, u)
    created = mk_user(client, u, [d.open_department_id])
    resp = client.contact.v3.user.patch(
        PatchUserRequest.builder().user_id(created.open_id).request_body(User.builder().mobile("").build()).build())
    assert resp.code == 41010, resp.raw.content
    assert get_user(client, created.open_id).mobile == created.mobile


def test_patch_sets_the_user_id_it_is_sent(client, u):
    """U9 takes any create field: a user_id sent in a patch changes it, in the same write as
    the other fields; one another user holds is 41011 and changes nothing."""
    d = mk_dept(client, u)
    created = mk_user(client, u, [d.open_department_id], user_id=u.id("pyp"))
    other = mk_user(client, u, [d.open_department_id], user_id=u.id("pyq"))
    new_id = u.id("pyr")

    def patch(**fields):
        body = User.builder()
        for k, v in fields.items():
            body = getattr(body, k)(v)
        return client.contact.v3.user.patch(
            PatchUserRequest.builder().user_id(created.open_id).request_body(body.build()).build())

    resp = patch(user_id=other.user_id, city="Taken")
    assert resp.code == 41011, resp.raw.content
    unchanged = get_user(client, created.open_id)
    assert (unchanged.user_id, unchanged.city) == (created.user_id, created.city)

    resp = patch(user_id=new_id, city="Renamed")
    assert resp.code == 0, resp.raw.content
    assert (resp.data.user.user_id, resp.data.user.city) == (new_id, "Renamed")
    assert get_user(client, new_id, "user_id").open_id == created.open_id
    resp = client.contact.v3.user.get(
        GetUserRequest.builder().user_id(created.user_id).user_id_type("user_id").build())
    assert resp.code == 41012, resp.raw.content


def test_dotted_line_leaders_and_job_fields_round_trip(client, u):
    """The user fields lark-oapi's model carries beyond the core ones: stored, returned, and
    dotted-line leaders translated into the request's user id type like leader_user_id."""
    d = mk_dept(client, u)
    boss, other = mk_user(client, u, [d.open_department_id]), mk_user(client, u, [d.open_department_id])
    created = mk_user(client, u, [d.open_department_id],
                      dotted_line_leader_user_ids=[boss.open_id, other.open_id],
                      geo="cn", job_level_id="jl-7", job_family_id="jf-2", subscription_ids=["s-1"])
    assert created.dotted_line_leader_user_ids == [boss.open_id, other.open_id]
    got = get_user(client, created.user_id, "user_id")
    assert got.dotted_line_leader_user_ids == [boss.user_id, other.user_id]
    assert (got.geo, got.job_level_id, got.job_family_id) == ("cn", "jl-7", "jf-2")
    assert got.subscription_ids == ["s-1"]

    patch = lambda body: client.contact.v3.user.patch(
        PatchUserRequest.builder().user_id(created.open_id).request_body(body).build())
    resp = patch(User.builder().dotted_line_leader_user_ids([other.open_id]).build())
    assert resp.code == 0 and resp.data.user.dotted_line_leader_user_ids == [other.open_id], resp.raw.content
    assert resp.data.user.job_level_id == "jl-7", "fields not sent stay"
    assert patch(User.builder().dotted_line_leader_user_ids([created.open_id]).build()).code == 41030
    assert patch(User.builder().dotted_line_leader_user_ids([OU_UNKNOWN]).build()).code == 44022
    check(client.contact.v3.user.delete(
        DeleteUserRequest.builder().user_id(other.open_id).request_body(DeleteUserRequestBody.builder().build()).build()),
        "delete the dotted-line leader")
    assert get_user(client, created.open_id).dotted_line_leader_user_ids == [], "a resigned leader is not shown"
    assert patch(User.builder().dotted_line_leader_user_ids([other.open_id]).build()).code == 44021


def test_user_create_get_and_status(client, u):
    d = mk_dept(client, u)
    mobile = u.mobile()
    created = mk_user(client, u, [d.open_department_id], mobile=mobile[3:], gender=2, city="Shanghai")
    assert created.mobile == mobile, "mainland mobile returned in +86 form"
    got = get_user(client, created.open_id)
    assert got.union_id.startswith("on_")
    assert got.department_ids == [d.open_department_id]
    assert got.gender == 2
    assert got.city == "Shanghai"
    assert got.status.is_resigned is False
    assert got.status.is_frozen is False


def test_unknown_user_is_41012(client):
    resp = client.contact.v3.user.get(GetUserRequest.builder().user_id(OU_UNKNOWN).build())
    assert resp.code == 41012, resp.raw.content
    assert isinstance(resp.msg, str)


def test_user_batch_repeated_keys(client, u):
    d = mk_dept(client, u)
    users = [mk_user(client, u, [d.open_department_id]) for _ in range(3)]
    ids = [x.open_id for x in users]
    req = BatchUserRequest.builder().user_ids(ids + [OU_UNKNOWN]).build()
    assert [v for k, v in req.queries if k == "user_ids"] == ids + [OU_UNKNOWN], "one key per id"
    resp = check(client.contact.v3.user.batch(req), "batch")
    assert sorted(x.open_id for x in resp.data.items) == sorted(ids)
    twice = BatchUserRequest.builder().user_ids([ids[0], ids[0], ids[1]]).build()
    resp = check(client.contact.v3.user.batch(twice), "batch with an id twice")
    assert sorted(x.open_id for x in resp.data.items) == sorted(ids[:2]), "each user once"


def test_patch_only_given_fields(client, u):
    d = mk_dept(client, u)
    created = mk_user(client, u, [d.open_department_id], city="Hangzhou")
    new_name = u.name("Renamed")
    req = (
        PatchUserRequest.builder()
        .user_id(created.open_id)
        .request_body(User.builder().name(new_name).build())
        .build()
    )
    resp = check(client.contact.v3.user.patch(req), "patch")
    assert resp.data.user.name == new_name
    got = get_user(client, created.open_id)
    assert got.name == new_name
    assert got.city == "Hangzhou"
    assert got.mobile == created.mobile


def test_patch_of_department_ids_without_orders_keeps_orders_and_primary(client, u):
    """U9 changes only the fields present: adding a department without `orders` keeps the
    user's orders in the departments it stays in, and its primary department."""
    a, b, c = (mk_dept(client, u).open_department_id for _ in range(3))
    orders = [
        UserOrder.builder().department_id(a).user_order(50).department_order(9).is_primary_dept(False).build(),
        UserOrder.builder().department_id(b).user_order(70).department_order(8).is_primary_dept(True).build(),
    ]
    created = mk_user(client, u, [a, b], orders=orders)
    req = (
        PatchUserRequest.builder()
        .user_id(created.open_id)
        .request_body(User.builder().department_ids([a, b, c]).build())
        .build()
    )
    check(client.contact.v3.user.patch(req), "patch department_ids")
    got = get_user(client, created.open_id)
    assert sorted(got.department_ids) == sorted([a, b, c])
    by_dept = {o.department_id: (o.user_order, o.department_order, o.is_primary_dept) for o in got.orders}
    assert by_dept == {a: (50, 9, False), b: (70, 8, True), c: (0, 0, False)}, by_dept


def test_children_list_smaller_orders_first_and_unordered_last(client, u):
    """Feishu's department `order`: smaller values first; a department created without one
    goes after its existing siblings."""
    top = mk_dept(client, u).open_department_id
    late = mk_dept(client, u, parent=top, order="300").open_department_id
    early = mk_dept(client, u, parent=top, order="100").open_department_id
    mid = mk_dept(client, u, parent=top, order="200").open_department_id
    unordered = mk_dept(client, u, parent=top)
    assert int(unordered.order) > 300, unordered.order
    assert walk_children(client, top) == [early, mid, late, unordered.open_department_id]


def test_member_counts_cover_sub_departments(client, u):
    """member_count: users of the department and its sub-departments, each once;
    primary_member_count: those whose primary department is among them."""
    top = mk_dept(client, u).open_department_id
    child = mk_dept(client, u, parent=top).open_department_id
    other = mk_dept(client, u).open_department_id
    mk_user(client, u, [top])
    mk_user(client, u, [child])
    mk_user(client, u, [other, child])

    def counts(dept):
        d = check(client.contact.v3.department.get(
            GetDepartmentRequest.builder().department_id(dept).build()), "get department").data.department
        return d.member_count, d.primary_member_count

    assert counts(top) == (3, 2)
    assert counts(child) == (2, 1)
    assert counts(other) == (1, 1)


def test_deleted_user_is_readable_as_resigned_and_resurrects(client, u):
    d = mk_dept(client, u)
    acceptor = mk_user(client, u, [d.open_department_id])
    victim = mk_user(client, u, [d.open_department_id])
    req = (
        DeleteUserRequest.builder()
        .user_id(victim.open_id)
        .request_body(DeleteUserRequestBody.builder().docs_acceptor_user_id(acceptor.open_id).build())
        .build()
    )
    check(client.contact.v3.user.delete(req), "delete")
    got = get_user(client, victim.open_id)
    assert got.status.is_resigned is True
    members = check(
        client.contact.v3.user.find_by_department(
            FindByDepartmentUserRequest.builder().department_id(d.open_department_id).build()
        ),
        "find_by_department",
    ).data.items
    assert victim.open_id not in [m.open_id for m in members or []]

    # resurrect built without request_body: lark-oapi sends an empty POST (Content-Length: 0)
    req = ResurrectUserRequest.builder().user_id(victim.open_id).build()
    assert req.body is None
    check(client.contact.v3.user.resurrect(req), "resurrect without body")
    again = get_user(client, victim.open_id)
    assert again.status.is_resigned is False
    assert again.department_ids == ["0"]


def test_batch_get_id_and_update_user_id(client, u):
    d = mk_dept(client, u)
    created = mk_user(client, u, [d.open_department_id], user_id=u.id("pyold"))
    req = (
        BatchGetIdUserRequest.builder()
        .user_id_type("user_id")
        .request_body(BatchGetIdUserRequestBody.builder().emails([created.email]).mobiles([created.mobile]).build())
        .build()
    )
    lst = check(client.contact.v3.user.batch_get_id(req), "batch_get_id").data.user_list
    assert {e.user_id for e in lst} == {created.user_id}

    new_id = u.id("pynew")
    req = (
        UpdateUserIdUserRequest.builder()
        .user_id(created.open_id)
        .request_body(UpdateUserIdUserRequestBody.builder().new_user_id(new_id).build())
        .build()
    )
    check(client.contact.v3.user.update_user_id(req), "update_user_id")
    assert get_user(client, new_id, "user_id").open_id == created.open_id


def test_logout_typed(client, u):
    d = mk_dept(client, u)
    created = mk_user(client, u, [d.open_department_id])
    req = (
        LogoutSessionRequest.builder()
        .user_id_type("open_id")
        .request_body(LogoutSessionRequestBody.builder().logout_type(1).user_id(created.open_id).build())
        .build()
    )
    check(client.passport.v1.session.logout(req), "logout")
    req = (
        LogoutSessionRequest.builder()
        .request_body(LogoutSessionRequestBody.builder().logout_type(1).build())
        .build()
    )
    resp = client.passport.v1.session.logout(req)
    assert resp.code == 1080001, resp.raw.content


def test_unknown_department_errors(client):
    resp = client.contact.v3.department.get(GetDepartmentRequest.builder().department_id(OD_UNKNOWN).build())
    assert resp.code == 40015, resp.raw.content
    resp = client.contact.v3.user.find_by_department(
        FindByDepartmentUserRequest.builder().department_id(OD_UNKNOWN).build()
    )
    assert resp.code == 40015, resp.raw.content
    resp = client.contact.v3.department.children(
        ChildrenDepartmentRequest.builder().department_id(OD_UNKNOWN).fetch_child(True).build()
    )
    assert resp.code == 40015, resp.raw.content


def test_department_leaders_snake_case_and_int_order(client, u):
    """lark-oapi models `leaders` as {leader_type, leader_id} and `order` as int; the docs use
    camelCase and a string. Roster accepts both and answers in both spellings, so that the
    SDK's typed model carries the leaders too."""
    import json

    from lark_oapi.api.contact.v3 import DepartmentLeader

    home = mk_dept(client, u)
    leader = mk_user(client, u, [home.open_department_id])
    d = mk_dept(
        client,
        u,
        order=100,
        leaders=[DepartmentLeader.builder().leader_type(1).leader_id(leader.open_id).build()],
    )
    resp = check(
        client.contact.v3.department.get(GetDepartmentRequest.builder().department_id(d.open_department_id).build()),
        "get department",
    )
    raw = json.loads(resp.raw.content)["data"]["department"]
    assert raw["order"] == "100"
    assert [(x["leaderType"], x["leaderID"]) for x in raw["leaders"]] == [(1, leader.open_id)]
    assert resp.data.department.leader_user_id == leader.open_id
    typed = [(x.leader_type, x.leader_id) for x in resp.data.department.leaders]
    assert typed == [(1, leader.open_id)], typed


def test_department_leaders_follow_the_documented_rules(client, u):
    """The department create doc: `leaders` names exactly one main leader, who must be the
    `leader_user_id` when both are sent; the main leader is not listed again as a deputy."""
    import json

    from lark_oapi.api.contact.v3 import CreateDepartmentRequest, Department, DepartmentLeader

    home = mk_dept(client, u)
    a = mk_user(client, u, [home.open_department_id])
    b = mk_user(client, u, [home.open_department_id])

    def leader(kind, user):
        return DepartmentLeader.builder().leader_type(kind).leader_id(user.open_id).build()

    def create(**fields):
        body = Department.builder().name(u.name("Led")).parent_department_id("0")
        for k, v in fields.items():
            body = getattr(body, k)(v)
        return client.contact.v3.department.create(
            CreateDepartmentRequest.builder().request_body(body.build()).build())

    assert create(leaders=[leader(1, a), leader(1, b)]).code == 40001, "two main leaders"
    assert create(leaders=[leader(2, b)]).code == 40001, "deputies without a main leader"
    assert create(leader_user_id=a.open_id, leaders=[leader(1, b)]).code == 40001, \
        "a main leader other than leader_user_id"
    resp = check(create(leader_user_id=a.open_id, leaders=[leader(1, a), leader(2, a), leader(2, b)]),
                 "create with a main leader listed as a deputy too")
    raw = json.loads(resp.raw.content)["data"]["department"]
    assert sorted((x["leaderType"], x["leaderID"]) for x in raw["leaders"]) == sorted(
        [(1, a.open_id), (2, b.open_id)]), raw["leaders"]
    assert create(leaders=[leader(1, a), leader(3, b)]).code == 40001, "leaderType 3"

    gone = mk_user(client, u, [home.open_department_id])
    check(client.contact.v3.user.delete(
        DeleteUserRequest.builder().user_id(gone.open_id)
        .request_body(DeleteUserRequestBody.builder().build()).build()), "delete")
    assert create(leader_user_id=gone.open_id).code == 44021, "a resigned leader"
    assert create(leaders=[leader(1, a), leader(2, gone)]).code == 44021, "a resigned deputy"
    assert create(leader_user_id=OU_UNKNOWN).code == 44022, "nobody"


def test_delete_hands_reports_to_the_leader_and_leaves_deputy_posts(client, u):
    """U5: an acceptor of documents takes the documents, not the reports (they go to the
    deleted user's own leader, the documented default); a deleted deputy leaves the
    department's `leaders`, and a deputy who takes over is listed once."""
    import json

    from lark_oapi.api.contact.v3 import (
        CreateDepartmentRequest,
        Department,
        DepartmentLeader,
    )

    home = mk_dept(client, u)
    top = mk_user(client, u, [home.open_department_id])
    boss = mk_user(client, u, [home.open_department_id], leader_user_id=top.open_id)
    report = mk_user(client, u, [home.open_department_id], leader_user_id=boss.open_id)
    docs = mk_user(client, u, [home.open_department_id])
    dep = mk_user(client, u, [home.open_department_id])
    dep2 = mk_user(client, u, [home.open_department_id])

    def leader(kind, user):
        return DepartmentLeader.builder().leader_type(kind).leader_id(user.open_id).build()

    body = (
        Department.builder()
        .name(u.name("Led"))
        .parent_department_id("0")
        .leader_user_id(boss.open_id)
        .leaders([leader(1, boss), leader(2, dep), leader(2, dep2)])
        .build()
    )
    led = check(
        client.contact.v3.department.create(
            CreateDepartmentRequest.builder().request_body(body).build()
        ),
        "create a led department",
    ).data.department

    def delete(user, **acceptors):
        b = DeleteUserRequestBody.builder()
        for k, v in acceptors.items():
            b = getattr(b, k)(v)
        check(
            client.contact.v3.user.delete(
                DeleteUserRequest.builder().user_id(user.open_id).request_body(b.build()).build()
            ),
            "delete",
        )

    def leaders():
        resp = client.contact.v3.department.get(
            GetDepartmentRequest.builder().department_id(led.open_department_id).build()
        )
        raw = json.loads(check(resp, "get department").raw.content)["data"]["department"]
        return sorted((x["leaderType"], x["leaderID"]) for x in raw["leaders"])

    delete(dep2)
    assert leaders() == sorted([(1, boss.open_id), (2, dep.open_id)])

    delete(boss, docs_acceptor_user_id=docs.open_id, department_chat_acceptor_user_id=dep.open_id)
    assert get_user(client, report.open_id).leader_user_id == dep.open_id
    assert leaders() == [(1, dep.open_id)], "the deputy took over and is listed once"

    delete(dep, docs_acceptor_user_id=docs.open_id)
    assert get_user(client, report.open_id).leader_user_id == "" or get_user(
        client, report.open_id
    ).leader_user_id is None, "dep had no leader: the report is left without one"
    again = mk_user(client, u, [home.open_department_id], leader_user_id=top.open_id)
    r2 = mk_user(client, u, [home.open_department_id], leader_user_id=again.open_id)
    delete(again, docs_acceptor_user_id=docs.open_id)
    assert get_user(client, r2.open_id).leader_user_id == top.open_id, \
        "without a department-chat acceptor the reports go to the deleted user's leader"


def test_description_is_stored_patched_and_bounded(client, u):
    """The SDK's user model carries `description`; it round-trips, a PATCH changes it, and
    more than 255 characters is refused rather than dropped."""
    d = mk_dept(client, u)
    a = mk_user(client, u, [d.open_department_id], description="Keeps the lights on")
    assert get_user(client, a.open_id).description == "Keeps the lights on"
    check(client.contact.v3.user.patch(
        PatchUserRequest.builder().user_id(a.open_id)
        .request_body(User.builder().description("Now in sales").build()).build()), "patch")
    got = get_user(client, a.open_id)
    assert got.description == "Now in sales"
    assert got.name == a.name, "a patch of the description leaves the rest"
    long = client.contact.v3.user.patch(
        PatchUserRequest.builder().user_id(a.open_id)
        .request_body(User.builder().description("x" * 256).build()).build())
    assert long.code == 40001, ("256 characters", long.raw.content)
    assert get_user(client, a.open_id).description == "Now in sales"


def test_department_batch_answers_the_departments_asked_for(client, u):
    """The SDK's `department.batch` (GET …/departments/batch): the departments in the order
    asked, each once, unknown ids left out; more than 50 ids is 40001."""
    from lark_oapi.api.contact.v3 import BatchDepartmentRequest

    a = mk_dept(client, u)
    b = mk_dept(client, u)

    def batch(ids):
        return client.contact.v3.department.batch(
            BatchDepartmentRequest.builder().department_ids(ids).build())

    got = check(batch([b.open_department_id, OD_UNKNOWN, a.open_department_id,
                       b.open_department_id]), "batch").data.items
    assert [d.open_department_id for d in got] == [b.open_department_id, a.open_department_id]
    assert got[0].name == b.name
    assert batch([a.open_department_id] * 51).code == 40001


def test_department_patch_of_one_language_keeps_the_others(client, u):
    """PATCH changes only what it sends, inside `i18n_name` too; an empty name clears one."""
    import json

    from lark_oapi.api.contact.v3 import (
        CreateDepartmentRequest,
        Department,
        DepartmentI18nName,
        PatchDepartmentRequest,
    )

    def names(**langs):
        b = DepartmentI18nName.builder()
        for k, v in langs.items():
            b = getattr(b, k)(v)
        return b.build()

    made = check(client.contact.v3.department.create(CreateDepartmentRequest.builder().request_body(
        Department.builder().name(u.name("Intl")).parent_department_id("0")
        .i18n_name(names(zh_cn="国际部", ja_jp="国際部", en_us="International")).build()).build()),
        "create").data.department

    def patch(**langs):
        check(client.contact.v3.department.patch(
            PatchDepartmentRequest.builder().department_id(made.open_department_id).request_body(
                Department.builder().i18n_name(names(**langs)).build()).build()), "patch")
        resp = client.contact.v3.department.get(
            GetDepartmentRequest.builder().department_id(made.open_department_id).build())
        return json.loads(check(resp, "get").raw.content)["data"]["department"]["i18n_name"]

    got = patch(en_us="Global")
    assert (got.get("zh_cn"), got.get("ja_jp"), got.get("en_us")) == ("国际部", "国際部", "Global")
    got = patch(ja_jp="")
    assert (got.get("zh_cn"), got.get("ja_jp") or "", got.get("en_us")) == ("国际部", "", "Global")


def test_department_hrbps_units_and_chat_types_round_trip(client, u):
    """D1 and the patch keep `department_hrbps` (in the request's user_id_type), `unit_ids`
    and `group_chat_employee_types`, and the typed model reads them back. Deleting a user
    takes it off every department's HRBPs, so that resurrecting it does not bring it back."""
    from lark_oapi.api.contact.v3 import CreateDepartmentRequest, Department, PatchDepartmentRequest

    home = mk_dept(client, u)
    a = mk_user(client, u, [home.open_department_id])
    b = mk_user(client, u, [home.open_department_id])

    made = check(client.contact.v3.department.create(
        CreateDepartmentRequest.builder().user_id_type("user_id").request_body(
            Department.builder().name(u.name("HR")).parent_department_id("0")
            .department_hrbps([a.user_id, b.user_id, a.user_id])
            .unit_ids(["unit-1", "unit-2"])
            .group_chat_employee_types([1, 2, 7]).build()).build()), "create").data.department
    assert made.department_hrbps == [a.user_id, b.user_id], "in user_id_type, repeats dropped"
    assert made.unit_ids == ["unit-1", "unit-2"]
    assert made.group_chat_employee_types == [1, 2, 7]

    def get(user_id_type=None):
        req = GetDepartmentRequest.builder().department_id(made.open_department_id)
        if user_id_type:
            req = req.user_id_type(user_id_type)
        return check(client.contact.v3.department.get(req.build()), "get").data.department

    got = get("open_id")
    assert got.department_hrbps == [a.open_id, b.open_id]
    assert got.unit_ids == ["unit-1", "unit-2"]

    def patch(**fields):
        body = Department.builder()
        for k, v in fields.items():
            body = getattr(body, k)(v)
        return client.contact.v3.department.patch(
            PatchDepartmentRequest.builder().department_id(made.open_department_id)
            .request_body(body.build()).build())

    check(patch(group_chat_employee_types=[3]), "patch types")
    got = get()
    assert got.group_chat_employee_types == [3]
    assert got.department_hrbps == [a.open_id, b.open_id], "a patch keeps what it does not send"
    assert got.unit_ids == ["unit-1", "unit-2"]

    assert patch(department_hrbps=[OU_UNKNOWN]).code == 40001, "an unknown user"
    assert patch(group_chat_employee_types=[0]).code == 40001, "not an employee type"
    assert patch(group_chat_employee_types=[2**31]).code == 40001, "beyond any employee type"
    assert patch(unit_ids=[""]).code == 40001, "an empty unit id"
    assert patch(unit_ids=[f"u{i}" for i in range(101)]).code == 40001, "over 100 units"
    from lark_oapi.api.contact.v3 import DepartmentLeader

    def leader(kind, who):
        return DepartmentLeader.builder().leader_type(kind).leader_id(who.open_id).build()

    assert patch(leaders=[leader(1, a)] + [leader(2, b)] * 101).code == 40001, \
        "over 100 deputies"
    got = get()
    assert got.department_hrbps == [a.open_id, b.open_id], "refused patches change nothing"
    assert got.group_chat_employee_types == [3]

    check(client.contact.v3.user.delete(
        DeleteUserRequest.builder().user_id(a.open_id)
        .request_body(DeleteUserRequestBody.builder().build()).build()), "delete a")
    assert get().department_hrbps == [b.open_id]
    check(client.contact.v3.user.resurrect(
        ResurrectUserRequest.builder().user_id(a.open_id).build()), "resurrect a")
    assert get().department_hrbps == [b.open_id], "resurrect brings no HRBP role back"

    check(patch(department_hrbps=[], unit_ids=[]), "clear")
    got = get()
    assert (got.department_hrbps or []) == [] and (got.unit_ids or []) == []


def test_update_with_put_and_update_department_id(client, u):
    """`user.update` and `department.update` (PUT) need the documented required fields and
    set what they send; `department.update_department_id` renames the custom id, refusing a
    malformed one (43008), one another department holds (43007) and the root (40002)."""
    from lark_oapi.api.contact.v3 import (
        Department,
        UpdateDepartmentIdDepartmentRequest,
        UpdateDepartmentIdDepartmentRequestBody,
        UpdateDepartmentRequest,
        UpdateUserRequest,
    )

    home = mk_dept(client, u)
    other = mk_dept(client, u)
    user = mk_user(client, u, [home.open_department_id], city="Hangzhou")

    def put_user(body):
        return client.contact.v3.user.update(
            UpdateUserRequest.builder().user_id(user.open_id).request_body(body).build())

    new_name = u.name("Put")
    got = check(put_user(User.builder().name(new_name).department_ids([other.open_department_id])
                         .employee_type(2).build()), "put user").data.user
    assert (got.name, got.department_ids, got.employee_type) == (
        new_name, [other.open_department_id], 2)
    assert got.city == "Hangzhou", "a field left out keeps its value"
    assert put_user(User.builder().department_ids([home.open_department_id]).build()).code == 41006
    assert put_user(User.builder().name("No departments").build()).code == 41017
    assert get_user(client, user.open_id).name == new_name, "refused updates change nothing"

    def put_dept(dept_id, body):
        return client.contact.v3.department.update(
            UpdateDepartmentRequest.builder().department_id(dept_id).request_body(body).build())

    moved_name = u.name("Moved")
    got = check(put_dept(other.open_department_id, Department.builder().name(moved_name)
                         .parent_department_id(home.open_department_id).build()), "put department")
    assert (got.data.department.name, got.data.department.parent_department_id) == (
        moved_name, home.open_department_id)
    assert put_dept(other.open_department_id,
                    Department.builder().parent_department_id("0").build()).code == 40016
    assert put_dept(other.open_department_id, Department.builder().name("X").build()).code == 44101

    def new_id(dept_id, value, id_type=None):
        req = UpdateDepartmentIdDepartmentRequest.builder().department_id(dept_id).request_body(
            UpdateDepartmentIdDepartmentRequestBody.builder().new_department_id(value).build())
        if id_type:
            req = req.department_id_type(id_type)
        return client.contact.v3.department.update_department_id(req.build())

    fresh = "D" + u.name("id")[-12:].replace(" ", "")
    check(new_id(other.open_department_id, fresh), "update_department_id")
    by_custom = check(client.contact.v3.department.get(
        GetDepartmentRequest.builder().department_id(fresh).department_id_type("department_id").build()),
        "get by the new id").data.department
    assert by_custom.open_department_id == other.open_department_id
    assert new_id(fresh, "bad/id", "department_id").code == 43008
    assert new_id(other.open_department_id, home.department_id).code == 43007
    assert new_id("0", "anything").code == 40002
    assert get_user(client, user.open_id).department_ids == [other.open_department_id], \
        "members stay with the department"
