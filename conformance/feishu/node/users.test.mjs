// U1 create, U9 patch, U10 get, U11 batch: success paths, id-type translation and errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  OD_UNKNOWN,
  OU_UNKNOWN,
  client,
  envelope,
  fails,
  getUser,
  mkDept,
  mkUser,
  ok,
  uniq,
} from './lib.mjs';

const u = uniq(3);
const user = client.contact.v3.user;

describe('U1 create + U10 get', () => {
  test('creates a user with the documented fields and reads them back', async () => {
    const d = await mkDept(u);
    const fields = {
      name: u.name('张三'),
      en_name: 'San Zhang',
      nickname: 'Sanzi',
      email: u.email(),
      mobile: u.mobile(),
      mobile_visible: false,
      gender: 1,
      department_ids: [d.open_department_id],
      city: '杭州',
      country: 'CN',
      work_station: '北楼-H34',
      join_time: 1615381200,
      employee_no: `E${u.id()}`,
      employee_type: 2,
      job_title: 'Engineer',
    };
    const created = (await ok(user.create({ data: fields }), 'create user')).user;
    assert.match(created.open_id, /^ou_[0-9a-f]{32}$/);
    assert.match(created.union_id, /^on_[0-9a-f]{32}$/);
    assert.ok(created.user_id, 'a user_id is generated when omitted');
    assert.equal(created.status.is_resigned, false);
    assert.equal(created.status.is_frozen, false);
    assert.equal(created.status.is_exited, false);
    const back = await getUser(created.open_id);
    for (const k of [
      'name', 'en_name', 'nickname', 'email', 'mobile', 'mobile_visible', 'gender', 'city',
      'country', 'work_station', 'join_time', 'employee_no', 'employee_type', 'job_title',
    ]) {
      assert.deepEqual(back[k], fields[k], `field ${k}`);
    }
    assert.deepEqual(back.department_ids, [d.open_department_id]);
    assert.equal(back.open_id, created.open_id);
    assert.equal(back.union_id, created.union_id);
    assert.equal(back.user_id, created.user_id);
    assert.equal(typeof back.avatar, 'object');
  });

  test('orders round-trip and follow department_id_type', async () => {
    const c1 = u.id('o1');
    const c2 = u.id('o2');
    const params = { department_id_type: 'department_id' };
    const d1 = await mkDept(u, { departmentId: c1, params });
    const d2 = await mkDept(u, { departmentId: c2, params });
    const created = await mkUser(u, {
      depts: [c1, c2],
      params,
      orders: [
        { department_id: c1, user_order: 5, department_order: 7, is_primary_dept: false },
        { department_id: c2, user_order: 9, department_order: 3, is_primary_dept: true },
      ],
    });
    assert.deepEqual(created.department_ids.sort(), [c1, c2].sort());
    const back = await getUser(created.open_id);
    const byDept = Object.fromEntries(back.orders.map((o) => [o.department_id, o]));
    assert.equal(byDept[d1.open_department_id]?.user_order, 5, JSON.stringify(back.orders));
    assert.equal(byDept[d1.open_department_id]?.department_order, 7);
    assert.equal(byDept[d2.open_department_id]?.is_primary_dept, true);
    assert.equal(byDept[d1.open_department_id]?.is_primary_dept, false);
  });

  test('a mainland mobile without +86 is stored and returned as +86…', async () => {
    const d = await mkDept(u);
    const m = u.mobile();
    const local = m.slice(3);
    const created = await mkUser(u, { depts: [d.open_department_id], mobile: local });
    assert.equal(created.mobile, m);
    assert.equal((await getUser(created.open_id)).mobile, m);
  });

  test('the user can be read by open_id, union_id and user_id', async () => {
    const d = await mkDept(u);
    const uid = u.id('uid');
    const created = await mkUser(u, { depts: [d.open_department_id], user_id: uid });
    assert.equal(created.user_id, uid);
    assert.equal((await getUser(created.union_id, { user_id_type: 'union_id' })).open_id, created.open_id);
    assert.equal((await getUser(uid, { user_id_type: 'user_id' })).open_id, created.open_id);
  });

  test('department_id_type=department_id on create; open_department_id on read', async () => {
    const customId = u.id('team');
    const d = await mkDept(u, { departmentId: customId, params: { department_id_type: 'department_id' } });
    const created = await mkUser(u, {
      depts: [customId],
      params: { department_id_type: 'department_id' },
    });
    assert.deepEqual(created.department_ids, [customId], 'echoed in the requested type');
    assert.deepEqual((await getUser(created.open_id)).department_ids, [d.open_department_id]);
    assert.deepEqual(
      (await getUser(created.open_id, { department_id_type: 'department_id' })).department_ids,
      [customId],
    );
  });

  test('leader given as user_id comes back as open_id and union_id', async () => {
    const d = await mkDept(u);
    const leaderUid = u.id('boss');
    const leader = await mkUser(u, { depts: [d.open_department_id], user_id: leaderUid });
    const report = await mkUser(u, {
      depts: [d.open_department_id],
      leader_user_id: leaderUid,
      params: { user_id_type: 'user_id' },
    });
    assert.equal(report.leader_user_id, leaderUid, 'echoed as user_id');
    assert.equal((await getUser(report.open_id)).leader_user_id, leader.open_id);
    assert.equal(
      (await getUser(report.union_id, { user_id_type: 'union_id' })).leader_user_id,
      leader.union_id,
    );
  });

  test('client_token: same token + body replays the same user and creates nothing', async () => {
    const d = await mkDept(u);
    const token = `ct-${u.id()}`;
    const body = {
      name: u.name('Idem'),
      mobile: u.mobile(),
      email: u.email(),
      employee_type: 1,
      department_ids: [d.open_department_id],
    };
    const a = (await ok(user.create({ data: body, params: { client_token: token } }), 'first')).user;
    const b = (await ok(user.create({ data: body, params: { client_token: token } }), 'replay')).user;
    assert.equal(b.open_id, a.open_id);
    assert.equal(b.user_id, a.user_id);
    const members = await ok(
      user.findByDepartment({ params: { department_id: d.open_department_id } }),
      'members',
    );
    assert.equal(members.items.length, 1, 'exactly one user created');
    await fails(
      user.create({ data: { ...body, name: u.name('Changed') }, params: { client_token: token } }),
      40021,
      'client_token with another body',
    );
    // without a client_token the same body is simply a duplicate
    await fails(user.create({ data: { ...body, email: u.email() } }), 41001, 'same mobile without client_token');
    await fails(user.create({ data: { ...body, mobile: u.mobile() } }), 41002, 'same email without client_token');
    // a new token with the same body is a new request, not a replay: duplicate mobile/email
    const again = await envelope(user.create({ data: body, params: { client_token: `${token}-2` } }));
    assert.ok(
      [41001, 41002].includes(again.body?.code),
      `another client_token with the same body: ${JSON.stringify(again.body)}`,
    );
  });

  test('client_token: same body with another query is 40021; tokens are per endpoint', async () => {
    const d = await mkDept(u);
    const token = `ctq-${u.id()}`;
    const body = {
      name: u.name('IdemQ'),
      mobile: u.mobile(),
      employee_type: 1,
      department_ids: [d.open_department_id],
    };
    const a = (await ok(user.create({ data: body, params: { client_token: token } }), 'first')).user;
    await fails(
      user.create({ data: body, params: { client_token: token, user_id_type: 'union_id' } }),
      40021,
      'same token and body, other query',
    );
    // the same token on D1 is another endpoint: a fresh department is created
    const dd = (
      await ok(
        client.contact.v3.department.create({
          data: { name: u.name('TokDept'), parent_department_id: d.open_department_id },
          params: { client_token: token },
        }),
        'same client_token on department create',
      )
    ).department;
    assert.match(dd.open_department_id, /^od-/);
    // and the replay still returns the original user
    const b = (await ok(user.create({ data: body, params: { client_token: token } }), 'replay')).user;
    assert.equal(b.open_id, a.open_id);
  });
});

describe('U1 under concurrency', () => {
  test('concurrent creates with one mobile: exactly one succeeds, the rest are 41001', async () => {
    const d = await mkDept(u);
    const mobile = u.mobile();
    const results = await Promise.all(
      Array.from({ length: 6 }, () =>
        envelope(
          user.create({
            data: { name: u.name('Race'), mobile, employee_type: 1, department_ids: [d.open_department_id] },
          }),
        ),
      ),
    );
    const codes = results.map((r) => r.body?.code);
    assert.equal(codes.filter((c) => c === 0).length, 1, `codes ${codes}`);
    assert.ok(codes.every((c) => c === 0 || c === 41001), `codes ${codes}`);
    const members = await ok(user.findByDepartment({ params: { department_id: d.open_department_id } }), 'members');
    assert.equal(members.items.length, 1);
  });

  test('concurrent replays of one client_token create one user and all return it', async () => {
    const d = await mkDept(u);
    const token = `race-${u.id()}`;
    const body = { name: u.name('RaceTok'), mobile: u.mobile(), employee_type: 1, department_ids: [d.open_department_id] };
    const results = await Promise.all(
      Array.from({ length: 6 }, () => envelope(user.create({ data: body, params: { client_token: token } }))),
    );
    const bodies = results.map((r) => r.body);
    assert.ok(bodies.every((b) => b?.code === 0), `all replays succeed: ${JSON.stringify(bodies.map((b) => b?.code))}`);
    assert.equal(new Set(bodies.map((b) => b.data.user.open_id)).size, 1, 'one user id for all');
    const members = await ok(user.findByDepartment({ params: { department_id: d.open_department_id } }), 'members');
    assert.equal(members.items.length, 1);
  });
});

describe('U1 errors', () => {
  const base = async () => {
    const d = await mkDept(u);
    return {
      d,
      body: () => ({
        name: u.name(),
        mobile: u.mobile(),
        email: u.email(),
        employee_type: 1,
        department_ids: [d.open_department_id],
      }),
    };
  };

  test('duplicate mobile 41001, duplicate email 41002 (also across +86 forms and case)', async () => {
    const { d, body } = await base();
    const first = await mkUser(u, { depts: [d.open_department_id] });
    await fails(user.create({ data: { ...body(), mobile: first.mobile } }), 41001, 'same mobile');
    await fails(user.create({ data: { ...body(), mobile: first.mobile.slice(3) } }), 41001, 'same mobile without +86');
    await fails(user.create({ data: { ...body(), email: first.email } }), 41002, 'same email');
    await fails(user.create({ data: { ...body(), email: first.email.toUpperCase() } }), 41002, 'same email upper case');
  });

  test('invalid mobile 41004, invalid email 41005, missing name 41006', async () => {
    const { body } = await base();
    await fails(user.create({ data: { ...body(), mobile: '12345' } }), 41004, 'invalid mobile');
    await fails(user.create({ data: { ...body(), mobile: 'not-a-phone' } }), 41004, 'non-numeric mobile');
    await fails(user.create({ data: { ...body(), email: 'not-an-email' } }), 41005, 'invalid email');
    const noName = body();
    delete noName.name;
    await fails(user.create({ data: noName }), 41006, 'missing name');
    await fails(user.create({ data: { ...body(), name: '' } }), 41006, 'empty name');
  });

  test('unknown leader 44022; unknown department 44035; more than 50 departments 41033', async () => {
    const { body } = await base();
    await fails(user.create({ data: { ...body(), leader_user_id: OU_UNKNOWN } }), 44022, 'unknown leader');
    await fails(user.create({ data: { ...body(), department_ids: [OD_UNKNOWN] } }), 44035, 'unknown department');
    const many = [];
    const holder = await mkDept(u);
    for (let i = 0; i < 51; i += 1) {
      many.push((await mkDept(u, { parent: holder.open_department_id })).open_department_id);
    }
    const b = body();
    await fails(user.create({ data: { ...b, department_ids: many } }), 41033, '51 departments');
    // 50 are fine
    const fifty = await mkUser(u, { depts: many.slice(0, 50) });
    assert.equal(fifty.department_ids.length, 50);
  });

  test('required field: no mobile is 41010', async () => {
    const { body } = await base();
    const noMobile = body();
    delete noMobile.mobile;
    await fails(user.create({ data: noMobile }), 41010, 'no mobile (email only)');
  });

  test('neither mobile nor email is refused (41009, or 41010 "no mobile")', async () => {
    const { body } = await base();
    const neither = body();
    delete neither.mobile;
    delete neither.email;
    const res = await envelope(user.create({ data: neither }));
    assert.ok([41009, 41010].includes(res.body?.code), `neither mobile nor email: ${JSON.stringify(res.body)}`);
  });

  test('required field: no department is 41017', async () => {
    const { body } = await base();
    const noDept = body();
    delete noDept.department_ids;
    await fails(user.create({ data: noDept }), 41017, 'no department_ids');
    await fails(user.create({ data: { ...body(), department_ids: [] } }), 41017, 'empty department_ids');
  });

  test('resigned leader 44021', async () => {
    const { d, body } = await base();
    const leader = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: leader.open_id }, data: {} }), 'delete leader');
    await fails(user.create({ data: { ...body(), leader_user_id: leader.open_id } }), 44021, 'resigned leader');
  });

  test('field validation: gender 41038, employee_type 41059, job_title 41063, name 41070, employee_no 44051', async () => {
    const { d, body } = await base();
    await fails(user.create({ data: { ...body(), gender: 7 } }), 41038, 'gender 7');
    await fails(user.create({ data: { ...body(), employee_type: 9 } }), 41059, 'employee_type 9');
    await fails(user.create({ data: { ...body(), job_title: 'j'.repeat(101) } }), 41063, 'job_title 101 chars');
    await fails(user.create({ data: { ...body(), name: 'n'.repeat(256) } }), 41070, 'name 256 chars');
    const ok255 = await mkUser(u, { depts: [d.open_department_id], name: `${u.tag}${'n'.repeat(249)}` });
    assert.equal(ok255.name.length, 255);
    const no = `E${u.id()}`;
    await mkUser(u, { depts: [d.open_department_id], employee_no: no });
    await fails(user.create({ data: { ...body(), employee_no: no } }), 44051, 'employee_no taken');
  });

  test('malformed user_id 41012 (U1 body)', async () => {
    const { body } = await base();
    await fails(user.create({ data: { ...body(), user_id: '-starts-with-dash' } }), 41012, 'user_id pattern');
    await fails(user.create({ data: { ...body(), user_id: 'x'.repeat(65) } }), 41012, 'user_id 65 chars');
  });

  test('taken user_id 41011', async () => {
    const { d, body } = await base();
    const uid = u.id('taken');
    await mkUser(u, { depts: [d.open_department_id], user_id: uid });
    await fails(user.create({ data: { ...body(), user_id: uid } }), 41011, 'user_id taken');
  });

  test('unknown user_id_type / department_id_type is 40001', async () => {
    const { body } = await base();
    await fails(user.create({ data: body(), params: { user_id_type: 'email' } }), 40001, 'user_id_type=email');
    await fails(
      user.create({ data: body(), params: { department_id_type: 'name' } }),
      40001,
      'department_id_type=name',
    );
  });

  test('failed creates leave nothing behind', async () => {
    const { d, body } = await base();
    const b = body();
    await fails(user.create({ data: { ...b, leader_user_id: OU_UNKNOWN } }), 44022, 'bad leader');
    const members = await ok(user.findByDepartment({ params: { department_id: d.open_department_id } }), 'members');
    assert.equal(members.items.length, 0);
    // the mobile and email are still free
    const ok2 = await mkUser(u, { depts: [d.open_department_id], mobile: b.mobile, email: b.email });
    assert.equal(ok2.mobile, b.mobile);
  });
});

describe('U10 get errors', () => {
  test('unknown user is 41012 (HTTP 400)', async () => {
    await fails(user.get({ path: { user_id: OU_UNKNOWN } }), 41012, 'unknown open_id', { status: 400 });
    await fails(
      user.get({ path: { user_id: 'nobody-here' }, params: { user_id_type: 'user_id' } }),
      41012,
      'unknown user_id',
    );
    await fails(user.get({ path: { user_id: OU_UNKNOWN }, params: { user_id_type: 'bogus' } }), 40001, 'bad user_id_type');
  });
});

describe('U9 patch', () => {
  test('only the given fields change', async () => {
    const d = await mkDept(u);
    const created = await mkUser(u, { depts: [d.open_department_id], city: 'Hangzhou', job_title: 'Dev' });
    const newName = u.name('Patched');
    const patched = (
      await ok(user.patch({ path: { user_id: created.open_id }, data: { name: newName } }), 'patch name')
    ).user;
    assert.equal(patched.name, newName);
    const back = await getUser(created.open_id);
    assert.equal(back.name, newName);
    assert.equal(back.city, 'Hangzhou');
    assert.equal(back.job_title, 'Dev');
    assert.equal(back.mobile, created.mobile);
    assert.equal(back.email, created.email);
    assert.deepEqual(back.department_ids, [d.open_department_id]);
  });

  test('mobile, email and departments change; leader set and cleared', async () => {
    const d1 = await mkDept(u);
    const d2 = await mkDept(u);
    const leader = await mkUser(u, { depts: [d1.open_department_id] });
    const created = await mkUser(u, { depts: [d1.open_department_id] });
    const mobile = u.mobile();
    const email = u.email();
    await ok(
      user.patch({
        path: { user_id: created.open_id },
        data: { mobile, email, department_ids: [d2.open_department_id], leader_user_id: leader.open_id },
      }),
      'patch several fields',
    );
    let back = await getUser(created.open_id);
    assert.equal(back.mobile, mobile);
    assert.equal(back.email, email);
    assert.deepEqual(back.department_ids, [d2.open_department_id]);
    assert.equal(back.leader_user_id, leader.open_id);
    await ok(user.patch({ path: { user_id: created.open_id }, data: { leader_user_id: '' } }), 'clear leader');
    back = await getUser(created.open_id);
    assert.equal(back.leader_user_id, '');
    // the old mobile is free again
    await mkUser(u, { depts: [d1.open_department_id], mobile: created.mobile });
  });

  test('patch by user_id with department_id_type=department_id', async () => {
    const customId = u.id('pd');
    const d = await mkDept(u, { departmentId: customId, params: { department_id_type: 'department_id' } });
    const d0 = await mkDept(u);
    const uid = u.id('pu');
    const created = await mkUser(u, { depts: [d0.open_department_id], user_id: uid });
    const patched = (
      await ok(
        user.patch({
          path: { user_id: uid },
          data: { department_ids: [customId] },
          params: { user_id_type: 'user_id', department_id_type: 'department_id' },
        }),
        'patch by user_id',
      )
    ).user;
    assert.deepEqual(patched.department_ids, [customId]);
    assert.deepEqual((await getUser(created.open_id)).department_ids, [d.open_department_id]);
  });

  test('an empty string clears a string field; null/absent leaves it alone', async () => {
    const d = await mkDept(u);
    const created = await mkUser(u, { depts: [d.open_department_id], city: 'Hangzhou', job_title: 'Dev' });
    await ok(
      user.patch({ path: { user_id: created.open_id }, data: { city: '', job_title: null } }),
      'clear city, null job_title',
    );
    const back = await getUser(created.open_id);
    assert.equal(back.city, '');
    assert.equal(back.job_title, 'Dev', 'null means not given');
  });

  test('is_frozen is mirrored in status.is_frozen', async () => {
    const d = await mkDept(u);
    const created = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.patch({ path: { user_id: created.open_id }, data: { is_frozen: true } }), 'freeze');
    assert.equal((await getUser(created.open_id)).status.is_frozen, true);
    await ok(user.patch({ path: { user_id: created.open_id }, data: { is_frozen: false } }), 'unfreeze');
    assert.equal((await getUser(created.open_id)).status.is_frozen, false);
  });

  test('errors: 41012 unknown, 41030 leader self, 44022 bad leader, 41001/41002 duplicates, 41004/41005 invalid', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    const b = await mkUser(u, { depts: [d.open_department_id] });
    const patch = (data, params = {}) => user.patch({ path: { user_id: a.open_id }, data, params });
    await fails(user.patch({ path: { user_id: OU_UNKNOWN }, data: { name: 'x' } }), 41012, 'patch unknown');
    await fails(patch({ leader_user_id: a.open_id }), 41030, 'leader self');
    await fails(patch({ leader_user_id: OU_UNKNOWN }), 44022, 'unknown leader');
    await fails(patch({ mobile: b.mobile }), 41001, 'duplicate mobile');
    await fails(patch({ email: b.email }), 41002, 'duplicate email');
    await fails(patch({ mobile: '12' }), 41004, 'invalid mobile');
    await fails(patch({ email: 'nope' }), 41005, 'invalid email');
    await fails(patch({ department_ids: [OD_UNKNOWN] }), 44035, 'unknown department');
    // nothing changed
    const back = await getUser(a.open_id);
    assert.equal(back.mobile, a.mobile);
    assert.equal(back.email, a.email);
    assert.equal(back.leader_user_id, '');
  });
});

describe('U11 batch', () => {
  test('several user_ids (repeated keys) return those users', async () => {
    const d = await mkDept(u);
    const us = [];
    for (let i = 0; i < 3; i += 1) us.push(await mkUser(u, { depts: [d.open_department_id] }));
    const data = await ok(
      user.batch({ params: { user_ids: [...us.map((x) => x.open_id), OU_UNKNOWN] } }),
      'batch',
    );
    assert.deepEqual(
      data.items.map((x) => x.open_id).sort(),
      us.map((x) => x.open_id).sort(),
      'unknown ids are omitted',
    );
    for (const item of data.items) assert.deepEqual(item.department_ids, [d.open_department_id]);
  });

  test('by user_id, with department_id_type=department_id', async () => {
    const customId = u.id('bd');
    await mkDept(u, { departmentId: customId, params: { department_id_type: 'department_id' } });
    const uids = [u.id('b1'), u.id('b2')];
    for (const uid of uids) {
      await mkUser(u, { depts: [customId], user_id: uid, params: { department_id_type: 'department_id' } });
    }
    const data = await ok(
      user.batch({
        params: { user_ids: uids, user_id_type: 'user_id', department_id_type: 'department_id' },
      }),
      'batch by user_id',
    );
    assert.deepEqual(data.items.map((x) => x.user_id).sort(), [...uids].sort());
    for (const item of data.items) assert.deepEqual(item.department_ids, [customId]);
  });

  test('more than 50 ids is 40001; no ids is 40001', async () => {
    const ids = Array.from({ length: 51 }, (_, i) => `ou_${String(i).padStart(32, '0')}`);
    await fails(user.batch({ params: { user_ids: ids } }), 40001, '51 user_ids');
    await fails(user.batch({ params: {} }), 40001, 'no user_ids');
    const fifty = await ok(user.batch({ params: { user_ids: ids.slice(0, 50) } }), '50 unknown ids');
    assert.deepEqual(fifty.items, []);
  });
});
