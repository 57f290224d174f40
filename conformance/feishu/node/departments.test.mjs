// D1 create, D2 get, D3 children (+ patch, delete, parent), through the typed methods.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  OD_UNKNOWN,
  allPages,
  client,
  envelope,
  fails,
  mkDept,
  mkUser,
  ok,
  uniq,
} from './lib.mjs';

const u = uniq(2);
const dept = client.contact.v3.department;

const getDept = async (id, params = {}) =>
  (await ok(dept.get({ path: { department_id: id }, params }), `get department ${id}`)).department;

describe('D1 create + D2 get', () => {
  test('creates under the root and reads back the same department', async () => {
    const name = u.name('Eng');
    const d = await mkDept(u, { name, params: {} });
    assert.match(d.open_department_id, /^od-[0-9a-f]{32}$/);
    assert.equal(d.name, name);
    assert.equal(d.parent_department_id, '0');
    assert.ok(d.department_id, 'a department_id is generated when omitted');
    assert.equal(d.status?.is_deleted, false);
    const back = await getDept(d.open_department_id);
    assert.equal(back.name, name);
    assert.equal(back.open_department_id, d.open_department_id);
    assert.equal(back.department_id, d.department_id);
    assert.equal(back.parent_department_id, '0');
    assert.equal(typeof back.order, 'string', 'order is a string on the wire');
    assert.ok(Array.isArray(back.leaders));
    assert.ok(Number.isInteger(back.member_count));
  });

  test('the root department "0" is readable in both id types', async () => {
    assert.equal((await getDept('0')).open_department_id, '0');
    assert.equal((await getDept('0', { department_id_type: 'department_id' })).department_id, '0');
  });

  test('department_id_type=department_id on input, open_department_id on output', async () => {
    const parentId = u.id('eng');
    const childId = u.id('eng-be');
    const params = { department_id_type: 'department_id' };
    const parent = await mkDept(u, { departmentId: parentId, params });
    assert.equal(parent.department_id, parentId);
    assert.equal(parent.parent_department_id, '0');
    const child = await mkDept(u, { departmentId: childId, parent: parentId, params });
    assert.equal(child.department_id, childId);
    assert.equal(child.parent_department_id, parentId, 'parent echoed as department_id');

    // read back by open id: parent reported as open_department_id
    const byOpen = await getDept(child.open_department_id);
    assert.equal(byOpen.parent_department_id, parent.open_department_id);
    assert.equal(byOpen.department_id, childId);
    // read back by custom id
    const byCustom = await getDept(childId, params);
    assert.equal(byCustom.open_department_id, child.open_department_id);
    assert.equal(byCustom.parent_department_id, parentId);
    // a custom id is not an open id: looking it up as open_department_id fails
    await fails(dept.get({ path: { department_id: childId } }), 40015, 'custom id as open id');
  });

  test('leader given as user_id comes back as open_id / union_id', async () => {
    const home = await mkDept(u);
    const leaderUserId = u.id('lead');
    const leader = await mkUser(u, { depts: [home.open_department_id], user_id: leaderUserId });
    const d = (
      await ok(
        dept.create({
          data: { name: u.name('Led'), parent_department_id: '0', leader_user_id: leaderUserId },
          params: { user_id_type: 'user_id' },
        }),
        'create department with leader',
      )
    ).department;
    assert.equal(d.leader_user_id, leaderUserId, 'echoed in user_id_type=user_id');
    assert.equal((await getDept(d.open_department_id)).leader_user_id, leader.open_id);
    assert.equal(
      (await getDept(d.open_department_id, { user_id_type: 'union_id' })).leader_user_id,
      leader.union_id,
    );
    assert.equal(
      (await getDept(d.open_department_id, { user_id_type: 'user_id' })).leader_user_id,
      leaderUserId,
    );
  });

  test('i18n_name, order and leaders (camelCase, as documented) round-trip', async () => {
    const home = await mkDept(u);
    const main = await mkUser(u, { depts: [home.open_department_id] });
    const deputy = await mkUser(u, { depts: [home.open_department_id] });
    const d = (
      await ok(
        dept.create({
          data: {
            name: u.name('Intl'),
            parent_department_id: '0',
            i18n_name: { zh_cn: '国际部', en_us: 'International' },
            order: '100',
            leaders: [
              { leaderType: 1, leaderID: main.open_id },
              { leaderType: 2, leaderID: deputy.open_id },
            ],
          },
        }),
        'create with leaders',
      )
    ).department;
    const back = await getDept(d.open_department_id);
    assert.equal(back.i18n_name?.zh_cn, '国际部');
    assert.equal(back.i18n_name?.en_us, 'International');
    assert.equal(back.order, '100');
    assert.deepEqual(
      back.leaders.map((l) => [l.leaderType, l.leaderID]).sort(),
      [[1, main.open_id], [2, deputy.open_id]].sort(),
    );
    assert.equal(back.leader_user_id, main.open_id, 'the main leader is leader_user_id');
    const asUnion = await getDept(d.open_department_id, { user_id_type: 'union_id' });
    assert.ok(asUnion.leaders.some((l) => l.leaderID === deputy.union_id), 'leaders follow user_id_type');
  });

  test('leaders read back (both spellings) can be sent back as they are; spellings that disagree are 40001', async () => {
    const home = await mkDept(u);
    const main = await mkUser(u, { depts: [home.open_department_id] });
    const deputy = await mkUser(u, { depts: [home.open_department_id] });
    const d = await mkDept(u, { parent: home.open_department_id });
    await ok(
      dept.patch({
        path: { department_id: d.open_department_id },
        data: { leaders: [{ leaderType: 1, leaderID: main.open_id }, { leaderType: 2, leaderID: deputy.open_id }] },
      }),
      'set leaders',
    );
    // The obvious read-then-update: every field as read, leaders with all four keys.
    const read = await getDept(d.open_department_id);
    assert.ok(read.leaders.every((l) => 'leaderType' in l && 'leader_type' in l), 'both spellings are answered');
    const updated = await ok(
      dept.update({
        path: { department_id: d.open_department_id },
        data: {
          name: read.name,
          parent_department_id: read.parent_department_id,
          leaders: read.leaders,
          order: read.order,
        },
      }),
      'update with the leaders as read',
    );
    assert.deepEqual(
      updated.department.leaders.map((l) => [l.leaderType, l.leaderID]).sort(),
      [[1, main.open_id], [2, deputy.open_id]].sort(),
    );
    await fails(
      dept.patch({
        path: { department_id: d.open_department_id },
        data: { leaders: [{ leaderType: 1, leader_type: 2, leaderID: main.open_id, leader_id: main.open_id }] },
      }),
      40001,
      'leaderType and leader_type that disagree',
    );
    assert.equal((await getDept(d.open_department_id)).leaders.length, 2, 'the refused patch changed nothing');
  });

  test('client_token: same request replays, different request is 40021', async () => {
    const parent = await mkDept(u);
    const token = `ct-${u.id()}`;
    const body = { name: u.name('Idem'), parent_department_id: parent.open_department_id };
    const a = (await ok(dept.create({ data: body, params: { client_token: token } }), 'first')).department;
    const b = (await ok(dept.create({ data: body, params: { client_token: token } }), 'replay')).department;
    assert.equal(b.open_department_id, a.open_department_id, 'replay returns the same department');
    const kids = await ok(dept.children({ path: { department_id: parent.open_department_id } }), 'children');
    assert.equal(kids.items.length, 1, `exactly one created: ${JSON.stringify(kids.items)}`);
    await fails(
      dept.create({ data: { ...body, name: u.name('Other') }, params: { client_token: token } }),
      40021,
      'client_token with another body',
    );
  });

  test('errors: unknown parent 40015, duplicate custom id 43007, invalid custom id 43008, duplicate name 43022', async () => {
    await fails(
      dept.create({ data: { name: u.name(), parent_department_id: OD_UNKNOWN } }),
      40015,
      'unknown parent',
    );
    const customId = u.id('dup');
    await mkDept(u, { departmentId: customId });
    await fails(
      dept.create({ data: { name: u.name(), parent_department_id: '0', department_id: customId } }),
      43007,
      'duplicate custom department_id',
    );
    await fails(
      dept.create({ data: { name: u.name(), parent_department_id: '0', department_id: 'od-notallowed' } }),
      43008,
      'department_id starting with od-',
    );
    await fails(
      dept.create({ data: { name: u.name(), parent_department_id: '0', department_id: 'has space' } }),
      43008,
      'department_id with a space',
    );
    const parent = await mkDept(u);
    const name = u.name('Twin');
    await mkDept(u, { parent: parent.open_department_id, name });
    await fails(
      dept.create({ data: { name, parent_department_id: parent.open_department_id } }),
      43022,
      'duplicate name under one parent',
    );
  });

  test("a name with '/' is 43029", async () => {
    await fails(
      dept.create({ data: { name: `a/b ${u.tag}`, parent_department_id: '0' } }),
      43029,
      "name with '/'",
    );
  });

  test('depth is limited to 25 levels (43019)', async () => {
    let parent = '0';
    let failedAt = 0;
    for (let level = 1; level <= 27; level += 1) {
      const { status, body } = await envelope(
        dept.create({ data: { name: u.name(`L${level}`), parent_department_id: parent } }),
      );
      if (body?.code === 0) {
        assert.equal(status, 200);
        parent = body.data.department.open_department_id;
        continue;
      }
      assert.equal(body?.code, 43019, `level ${level}: ${JSON.stringify(body)}`);
      failedAt = level;
      break;
    }
    // 25 levels below the root are allowed (whether the root counts as level 1 is not
    // documented, so the first refusal may come at level 25 or 26, never earlier or later).
    assert.ok(failedAt === 25 || failedAt === 26, `first refusal at level ${failedAt}`);
  });

  test('at most 1000 children per department (43013)', async () => {
    const parent = await mkDept(u);
    for (let i = 0; i < 1000; i += 1) {
      await ok(
        dept.create({ data: { name: `c${i}`, parent_department_id: parent.open_department_id } }),
        `child ${i}`,
      );
    }
    await fails(
      dept.create({ data: { name: 'c1000', parent_department_id: parent.open_department_id } }),
      43013,
      '1001st child',
    );
    const all = await allPages(async (page_token) =>
      ok(
        dept.children({ path: { department_id: parent.open_department_id }, params: { page_size: 50, page_token } }),
        'children page',
      ),
    );
    assert.equal(all.length, 1000);
    assert.equal(new Set(all.map((d) => d.open_department_id)).size, 1000);
  });

  test('D1 validation codes of the create doc: 44101 no parent, 40016 no name, 43008 id "1", 43029 "/" in i18n_name', async () => {
    await fails(dept.create({ data: { name: u.name() } }), 44101, 'no parent_department_id', { status: 400 });
    await fails(dept.create({ data: { name: '', parent_department_id: '0' } }), 40016, 'empty name', { status: 400 });
    await fails(
      dept.create({ data: { name: u.name(), parent_department_id: '0', department_id: '1' } }),
      43008,
      'custom id 1',
    );
    await fails(
      dept.create({ data: { name: u.name(), parent_department_id: '0', i18n_name: { en_us: 'a/b' } } }),
      43029,
      'a slash in i18n_name',
    );
    await fails(
      dept.create({ data: { name: u.name(), parent_department_id: '0', i18n_name: { zh_cn: 'x'.repeat(101) } } }),
      40001,
      'an i18n_name longer than a name may be',
    );
    await fails(dept.create({ data: { name: u.name(), parent_department_id: '0', order: '-1' } }), 40001, 'negative order');
  });

  test('D2: unknown department is 40015; unknown department_id_type is 40001', async () => {
    await fails(dept.get({ path: { department_id: OD_UNKNOWN } }), 40015, 'unknown department', {
      status: 400,
    });
    await fails(
      dept.get({ path: { department_id: '0' }, params: { department_id_type: 'bogus_id' } }),
      40001,
      'unknown department_id_type',
    );
    await fails(
      dept.get({ path: { department_id: '0' }, params: { user_id_type: 'bogus_id' } }),
      40001,
      'unknown user_id_type',
    );
  });
});

describe('D3 children', () => {
  async function tree() {
    const top = await mkDept(u, { name: u.name('Top') });
    const a = await mkDept(u, { parent: top.open_department_id, name: u.name('A') });
    const b = await mkDept(u, { parent: top.open_department_id, name: u.name('B') });
    const a1 = await mkDept(u, { parent: a.open_department_id, name: u.name('A1') });
    const a1x = await mkDept(u, { parent: a1.open_department_id, name: u.name('A1x') });
    return { top, a, b, a1, a1x };
  }
  const ids = (items) => items.map((d) => d.open_department_id).sort();

  test('direct children only by default; fetch_child=true recurses', async () => {
    const t = await tree();
    const direct = await ok(dept.children({ path: { department_id: t.top.open_department_id } }), 'children');
    assert.deepEqual(ids(direct.items), ids([t.a, t.b]));
    assert.equal(direct.has_more, false);
    const all = await ok(
      dept.children({ path: { department_id: t.top.open_department_id }, params: { fetch_child: true } }),
      'children fetch_child',
    );
    assert.deepEqual(ids(all.items), ids([t.a, t.b, t.a1, t.a1x]));
    const none = await ok(
      dept.children({ path: { department_id: t.a1x.open_department_id }, params: { fetch_child: true } }),
      'leaf children',
    );
    assert.deepEqual(none.items, []);
    assert.equal(none.has_more, false);
  });

  test('children in department_id_type=department_id report parents as department_id', async () => {
    const t = await tree();
    const all = await ok(
      dept.children({
        path: { department_id: t.top.department_id },
        params: { fetch_child: true, department_id_type: 'department_id' },
      }),
      'children by custom id',
    );
    const a1 = all.items.find((d) => d.open_department_id === t.a1.open_department_id);
    assert.ok(a1, 'A1 listed');
    assert.equal(a1.parent_department_id, t.a.department_id);
  });

  test('the root "0" lists top-level departments', async () => {
    const t = await tree();
    const found = await allPages(async (page_token) =>
      ok(dept.children({ path: { department_id: '0' }, params: { page_size: 50, page_token } }), 'root children'),
    );
    const set = new Set(found.map((d) => d.open_department_id));
    assert.ok(set.has(t.top.open_department_id));
    assert.ok(!set.has(t.a.open_department_id), 'a grandchild is not a direct child of the root');
  });

  test('page_token pagination is complete and duplicate-free while departments are added', async () => {
    const t = await tree();
    const extra = [];
    for (let i = 0; i < 5; i += 1) {
      extra.push(await mkDept(u, { parent: t.top.open_department_id, name: u.name(`C${i}`) }));
    }
    const before = [t.a, t.b, ...extra].map((d) => d.open_department_id);
    const seen = await allPages(
      async (page_token) =>
        ok(
          dept.children({
            path: { department_id: t.top.open_department_id },
            params: { page_size: 2, page_token },
          }),
          'children page',
        ),
      {
        between: async () => {
          await mkDept(u, { parent: t.top.open_department_id, name: u.name('Late') });
        },
      },
    );
    const got = seen.map((d) => d.open_department_id);
    assert.equal(new Set(got).size, got.length, `no duplicates: ${got}`);
    for (const id of before) assert.ok(got.includes(id), `${id} listed`);
  });

  test('page_size defaults to 10', async () => {
    const top = await mkDept(u);
    for (let i = 0; i < 11; i += 1) await mkDept(u, { parent: top.open_department_id });
    const first = await ok(dept.children({ path: { department_id: top.open_department_id } }), 'default page');
    assert.equal(first.items.length, 10);
    assert.equal(first.has_more, true);
    assert.ok(first.page_token);
  });

  test('childrenWithIterator terminates and yields every child once', async () => {
    const t = await tree();
    const it = await dept.childrenWithIterator({
      path: { department_id: t.top.open_department_id },
      params: { page_size: 1, fetch_child: true },
    });
    const got = [];
    let pages = 0;
    for await (const page of it) {
      pages += 1;
      assert.ok(pages < 50, 'iterator must terminate');
      assert.ok(page, 'the iterator yields null only when a request failed');
      got.push(...(page.items ?? []));
    }
    assert.deepEqual(ids(got), ids([t.a, t.b, t.a1, t.a1x]));
    assert.ok(pages >= 4, `page_size=1 gives one page per child (${pages})`);
  });

  test('errors: page_size > 50 is 40011, bad page_token 40012, unknown department 40015', async () => {
    const t = await tree();
    await fails(
      dept.children({ path: { department_id: t.top.open_department_id }, params: { page_size: 51 } }),
      40011,
      'page_size 51',
    );
    await fails(
      dept.children({ path: { department_id: t.top.open_department_id }, params: { page_size: 0 } }),
      40011,
      'page_size 0',
    );
    await fails(
      dept.children({
        path: { department_id: t.top.open_department_id },
        params: { page_token: 'not-a-token-we-issued' },
      }),
      40012,
      'bad page_token',
    );
    await fails(dept.children({ path: { department_id: OD_UNKNOWN } }), 40015, 'unknown department');
  });
});

describe('department patch / delete / parent', () => {
  test('patch changes only the given fields', async () => {
    const parent = await mkDept(u);
    const d = await mkDept(u, { parent: parent.open_department_id });
    const newName = u.name('Renamed');
    const patched = await ok(
      dept.patch({ path: { department_id: d.open_department_id }, data: { name: newName } }),
      'patch department',
    );
    assert.equal(patched.department.name, newName);
    const back = await getDept(d.open_department_id);
    assert.equal(back.name, newName);
    assert.equal(back.parent_department_id, parent.open_department_id, 'parent unchanged');
    assert.equal(back.department_id, d.department_id, 'department_id unchanged');
    await fails(
      dept.patch({ path: { department_id: OD_UNKNOWN }, data: { name: u.name() } }),
      40015,
      'patch unknown department',
    );
  });

  test('patch moves a department to another parent', async () => {
    const p1 = await mkDept(u);
    const p2 = await mkDept(u);
    const d = await mkDept(u, { parent: p1.open_department_id });
    await ok(
      dept.patch({
        path: { department_id: d.open_department_id },
        data: { parent_department_id: p2.open_department_id },
      }),
      'move department',
    );
    assert.equal((await getDept(d.open_department_id)).parent_department_id, p2.open_department_id);
    const kids1 = await ok(dept.children({ path: { department_id: p1.open_department_id } }), 'old parent');
    assert.equal(kids1.items.length, 0);
    const kids2 = await ok(dept.children({ path: { department_id: p2.open_department_id } }), 'new parent');
    assert.deepEqual(kids2.items.map((x) => x.open_department_id), [d.open_department_id]);
  });

  test('a department cannot move under itself or its own descendant', async () => {
    const top = await mkDept(u);
    const mid = await mkDept(u, { parent: top.open_department_id });
    const low = await mkDept(u, { parent: mid.open_department_id });
    for (const [what, target] of [
      ['itself', top.open_department_id],
      ['its grandchild', low.open_department_id],
    ]) {
      const { body } = await envelope(
        dept.patch({ path: { department_id: top.open_department_id }, data: { parent_department_id: target } }),
      );
      assert.equal(body?.code, 40001, `moving under ${what} must fail as a parameter error: ${JSON.stringify(body)}`);
    }
    assert.equal((await getDept(top.open_department_id)).parent_department_id, '0', 'unchanged');
    assert.equal((await getDept(low.open_department_id)).parent_department_id, mid.open_department_id);
  });

  test('delete removes an empty department; one with members is 43011, with children 43012, the root 40002', async () => {
    const parent = await mkDept(u);
    const empty = await mkDept(u, { parent: parent.open_department_id });
    await ok(dept.delete({ path: { department_id: empty.open_department_id } }), 'delete empty department');
    const kids = await ok(dept.children({ path: { department_id: parent.open_department_id } }), 'children');
    assert.ok(
      !kids.items.some((x) => x.open_department_id === empty.open_department_id),
      'a deleted department is no longer a child',
    );
    const res = await (async () => {
      try {
        return await dept.get({ path: { department_id: empty.open_department_id } });
      } catch (e) {
        return e.response?.data;
      }
    })();
    assert.ok(
      res?.code === 40015 || res?.data?.department?.status?.is_deleted === true,
      `a deleted department is gone (40015) or marked is_deleted: ${JSON.stringify(res)}`,
    );

    // with a member
    const withMember = await mkDept(u, { parent: parent.open_department_id });
    await mkUser(u, { depts: [withMember.open_department_id] });
    await fails(dept.delete({ path: { department_id: withMember.open_department_id } }), 43011, 'delete with member', {
      status: 400,
    });
    // with a child
    const withChild = await mkDept(u, { parent: parent.open_department_id });
    await mkDept(u, { parent: withChild.open_department_id });
    await fails(dept.delete({ path: { department_id: withChild.open_department_id } }), 43012, 'delete with child', {
      status: 400,
    });
    await ok(dept.get({ path: { department_id: withChild.open_department_id } }), 'still there');
    // The delete doc: no operation on the root; the patch of it is refused the same way.
    await fails(dept.delete({ path: { department_id: '0' } }), 40002, 'delete the root', { status: 400 });
    await fails(dept.patch({ path: { department_id: '0' }, data: { name: u.name('Root') } }), 40002, 'rename the root');
  });

  test('a move into a parent that already has 1000 children is refused (43013)', async () => {
    const full = await mkDept(u);
    for (let i = 0; i < 1000; i += 1) {
      await ok(dept.create({ data: { name: `m${i}`, parent_department_id: full.open_department_id } }), `child ${i}`);
    }
    const mover = await mkDept(u);
    await fails(
      dept.patch({ path: { department_id: mover.open_department_id }, data: { parent_department_id: full.open_department_id } }),
      43013,
      'move into a full parent',
    );
    assert.equal((await getDept(mover.open_department_id)).parent_department_id, '0', 'not moved');
  });

  test('fetch_child pages keep every descendant once when a parent is reordered between pages', async () => {
    const top = await mkDept(u);
    const mk = async (parent, order) =>
      (await ok(dept.create({ data: { name: u.name('F'), parent_department_id: parent, order: String(order) } }), 'create'))
        .department.open_department_id;
    const a = await mk(top.open_department_id, 10);
    const b = await mk(top.open_department_id, 20);
    const kids = [];
    for (let i = 0; i < 3; i += 1) kids.push(await mk(a, i + 1), await mk(b, i + 1));
    const page = (page_token) =>
      ok(
        dept.children({
          path: { department_id: top.open_department_id },
          params: { page_size: 2, page_token, fetch_child: true },
        }),
        'page',
      );
    const first = await page();
    assert.deepEqual(first.items.map((d) => d.open_department_id), [a, b]);
    // B goes ahead of A: the walk below must neither lose nor repeat B's children.
    await ok(dept.patch({ path: { department_id: b }, data: { order: '5' } }), 'reorder');
    const rest = await allPages(async (t) => page(t ?? first.page_token));
    const got = rest.map((d) => d.open_department_id);
    assert.equal(new Set(got).size, got.length, `no repeats: ${got}`);
    assert.deepEqual([...got].sort(), [...kids].sort(), 'every child of A and B once');
  });

  test('children pages return every department that stays put once, whatever is reordered or deleted meanwhile', async () => {
    const top = await mkDept(u);
    const kids = [];
    for (let i = 0; i < 6; i += 1) {
      kids.push(
        await ok(
          dept.create({ data: { name: u.name(`K${i}`), parent_department_id: top.open_department_id, order: String((i + 1) * 10) } }),
          'child',
        ),
      );
    }
    const ids6 = kids.map((k) => k.department.open_department_id);
    const page = (page_token) =>
      ok(dept.children({ path: { department_id: top.open_department_id }, params: { page_size: 2, page_token } }), 'page');
    const first = await page();
    assert.deepEqual(first.items.map((d) => d.open_department_id), ids6.slice(0, 2));
    // The last item returned moves to the end and the first one is deleted: the rest still
    // follows, each once.
    await ok(dept.patch({ path: { department_id: ids6[1] }, data: { order: '1000' } }), 'reorder');
    await ok(dept.delete({ path: { department_id: ids6[0] } }), 'delete');
    const rest = await allPages(async (t) => page(t ?? first.page_token));
    const got = rest.map((d) => d.open_department_id);
    // Each at most once; those that stayed put all follow, in order; the moved one (already
    // seen on the first page) may come again at its new place, at the end, and nothing else.
    assert.equal(new Set(got).size, got.length, `no repeats: ${got}`);
    assert.deepEqual(got.filter((id) => id !== ids6[1]), ids6.slice(2), `the departments that stayed put follow: ${got}`);
    assert.ok(!got.includes(ids6[0]), `the deleted department is gone: ${got}`);
    // A token works on its own list only.
    const other = await mkDept(u);
    await fails(
      dept.children({ path: { department_id: other.open_department_id }, params: { page_token: first.page_token } }),
      40012,
      'a token of another list',
    );
  });

  test('parent lists the ancestors, nearest first; parentWithIterator terminates', async () => {
    const g = await mkDept(u);
    const p = await mkDept(u, { parent: g.open_department_id });
    const c = await mkDept(u, { parent: p.open_department_id });
    const data = await ok(dept.parent({ params: { department_id: c.open_department_id } }), 'parent');
    // The parent doc: the root is never listed.
    const chain = data.items.map((d) => d.open_department_id);
    assert.deepEqual(chain, [p.open_department_id, g.open_department_id]);
    const it = await dept.parentWithIterator({ params: { department_id: c.open_department_id, page_size: 1 } });
    const got = [];
    let pages = 0;
    for await (const page of it) {
      pages += 1;
      assert.ok(pages < 20, 'iterator must terminate');
      assert.ok(page, 'parent page');
      got.push(...(page.items ?? []).map((d) => d.open_department_id));
    }
    assert.deepEqual(got, [p.open_department_id, g.open_department_id]);
    await fails(dept.parent({ params: { department_id: OD_UNKNOWN } }), 40015, 'parent of unknown');
    await fails(dept.parent({ params: {} }), 44102, 'parent without department_id');
  });
});
