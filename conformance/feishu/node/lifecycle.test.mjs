// U5 delete, U6 resurrect, U2 update_user_id, U3 batch_get_id, U7 logout, U8 JSAPI ticket.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  OD_UNKNOWN,
  OU_UNKNOWN,
  allPages,
  client,
  envelope,
  fails,
  getUser,
  mkDept,
  mkUser,
  ok,
  uniq,
} from './lib.mjs';

const u = uniq(4);
const user = client.contact.v3.user;

const members = async (deptId) =>
  (await ok(user.findByDepartment({ params: { department_id: deptId, page_size: 50 } }), 'members')).items.map(
    (x) => x.open_id,
  );

describe('U5 delete', () => {
  test('soft delete: still readable with is_resigned, gone from its department', async () => {
    const d = await mkDept(u);
    const acceptor = await mkUser(u, { depts: [d.open_department_id] });
    const victim = await mkUser(u, { depts: [d.open_department_id] });
    await ok(
      user.delete({
        path: { user_id: victim.open_id },
        data: {
          department_chat_acceptor_user_id: acceptor.open_id,
          docs_acceptor_user_id: acceptor.open_id,
          calendar_acceptor_user_id: acceptor.open_id,
          email_acceptor: { processing_type: '1', acceptor_user_id: acceptor.open_id },
        },
      }),
      'delete with acceptors',
    );
    const back = await getUser(victim.open_id);
    assert.equal(back.status.is_resigned, true);
    assert.equal(back.open_id, victim.open_id);
    assert.deepEqual(back.department_ids ?? [], [], 'a resigned user leaves all departments');
    const ids = await members(d.open_department_id);
    assert.ok(!ids.includes(victim.open_id), 'resigned users leave find_by_department');
    assert.ok(ids.includes(acceptor.open_id));
    // still in U11 with its status
    const batch = await ok(user.batch({ params: { user_ids: [victim.open_id] } }), 'batch');
    assert.equal(batch.items.length, 1);
    assert.equal(batch.items[0].status.is_resigned, true);
  });

  test('delete with an empty body and with acceptors given as user_id', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: a.open_id } }), 'delete without body');
    assert.equal((await getUser(a.open_id)).status.is_resigned, true);

    const accUid = u.id('acc');
    await mkUser(u, { depts: [d.open_department_id], user_id: accUid });
    const vUid = u.id('vic');
    const v = await mkUser(u, { depts: [d.open_department_id], user_id: vUid });
    await ok(
      user.delete({
        path: { user_id: vUid },
        data: { docs_acceptor_user_id: accUid },
        params: { user_id_type: 'user_id' },
      }),
      'delete by user_id',
    );
    assert.equal((await getUser(v.open_id)).status.is_resigned, true);
  });

  test('acceptor invalid (unknown, self, resigned) is 41052 and nothing changes', async () => {
    const d = await mkDept(u);
    const v = await mkUser(u, { depts: [d.open_department_id] });
    const gone = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: gone.open_id }, data: {} }), 'delete acceptor-to-be');
    for (const [what, acc] of [
      ['unknown', OU_UNKNOWN],
      ['self', v.open_id],
      ['resigned', gone.open_id],
    ]) {
      await fails(
        user.delete({ path: { user_id: v.open_id }, data: { docs_acceptor_user_id: acc } }),
        41052,
        `acceptor ${what}`,
      );
    }
    await fails(
      user.delete({
        path: { user_id: v.open_id },
        data: { email_acceptor: { processing_type: '1', acceptor_user_id: OU_UNKNOWN } },
      }),
      41052,
      'email acceptor unknown',
    );
    assert.equal((await getUser(v.open_id)).status.is_resigned, false, 'still active');
    assert.ok((await members(d.open_department_id)).includes(v.open_id));
  });

  test('unknown user 41012; resigned user delete/patch 42006', async () => {
    await fails(user.delete({ path: { user_id: OU_UNKNOWN }, data: {} }), 41012, 'delete unknown');
    const d = await mkDept(u);
    const v = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: v.open_id }, data: {} }), 'delete');
    await fails(user.delete({ path: { user_id: v.open_id }, data: {} }), 42006, 'delete twice');
    await fails(user.patch({ path: { user_id: v.open_id }, data: { name: u.name() } }), 42006, 'patch resigned');
  });

  test("a resigned user's mobile, email and user_id are free again", async () => {
    const d = await mkDept(u);
    const uid = u.id('reuse');
    const v = await mkUser(u, { depts: [d.open_department_id], user_id: uid });
    await ok(user.delete({ path: { user_id: v.open_id }, data: {} }), 'delete');
    const n = await mkUser(u, { depts: [d.open_department_id], user_id: uid, mobile: v.mobile, email: v.email });
    assert.notEqual(n.open_id, v.open_id);
    assert.equal((await getUser(uid, { user_id_type: 'user_id' })).open_id, n.open_id, 'user_id now names the new user');
  });
});

describe('U6 resurrect', () => {
  test('resurrects into the given departments, or the root when none are given', async () => {
    const d = await mkDept(u);
    const d2 = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: a.open_id }, data: {} }), 'delete a');
    await ok(
      user.resurrect({
        path: { user_id: a.open_id },
        data: { departments: [{ department_id: d2.open_department_id, user_order: 0, department_order: 0 }] },
      }),
      'resurrect a',
    );
    const back = await getUser(a.open_id);
    assert.equal(back.status.is_resigned, false);
    assert.deepEqual(back.department_ids, [d2.open_department_id]);
    assert.ok((await members(d2.open_department_id)).includes(a.open_id));
    assert.equal(back.mobile, a.mobile, 'mobile kept');
    assert.equal(back.email, a.email, 'email kept');

    const b = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: b.open_id }, data: {} }), 'delete b');
    await ok(user.resurrect({ path: { user_id: b.open_id }, data: {} }), 'resurrect b without departments');
    const bb = await getUser(b.open_id);
    assert.equal(bb.status.is_resigned, false);
    assert.deepEqual(bb.department_ids, ['0']);
    const rootMembers = await allPages(async (page_token) =>
      ok(user.findByDepartment({ params: { department_id: '0', page_size: 50, page_token } }), 'root members'),
    );
    assert.ok(rootMembers.some((x) => x.open_id === b.open_id), 'listed under the root department');
  });

  test('resurrect with the seed interface\'s bare department_ids', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: a.open_id }, data: {} }), 'delete');
    await ok(
      user.resurrect({ path: { user_id: a.open_id }, data: { department_ids: [d.open_department_id] } }),
      'resurrect with department_ids',
    );
    assert.deepEqual((await getUser(a.open_id)).department_ids, [d.open_department_id]);
  });

  test('racing resurrects of one user: one succeeds, the others are 44033', async () => {
    const a = await mkUser(u, { depts: ['0'] });
    await ok(user.delete({ path: { user_id: a.open_id }, data: {} }), 'delete');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => envelope(user.resurrect({ path: { user_id: a.open_id }, data: {} }))),
    );
    const codes = results.map((r) => r.body?.code).sort();
    assert.deepEqual(codes, [0, 44033, 44033, 44033, 44033, 44033, 44033, 44033], JSON.stringify(codes));
  });

  test('resurrect with department_id_type=department_id', async () => {
    const customId = u.id('rd');
    const d = await mkDept(u, { departmentId: customId, params: { department_id_type: 'department_id' } });
    const a = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: a.open_id }, data: {} }), 'delete');
    await ok(
      user.resurrect({
        path: { user_id: a.open_id },
        data: { departments: [{ department_id: customId }] },
        params: { department_id_type: 'department_id' },
      }),
      'resurrect by custom department id',
    );
    assert.deepEqual((await getUser(a.open_id)).department_ids, [d.open_department_id]);
  });

  test('active user 44033; unknown user 41012; unknown department 44035', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    await fails(user.resurrect({ path: { user_id: a.open_id }, data: {} }), 44033, 'resurrect active');
    await fails(user.resurrect({ path: { user_id: OU_UNKNOWN }, data: {} }), 41012, 'resurrect unknown');
    await ok(user.delete({ path: { user_id: a.open_id }, data: {} }), 'delete');
    await fails(
      user.resurrect({ path: { user_id: a.open_id }, data: { departments: [{ department_id: OD_UNKNOWN }] } }),
      44035,
      'resurrect into unknown department',
    );
    assert.equal((await getUser(a.open_id)).status.is_resigned, true, 'still resigned');
  });

  test('taken email 44031, taken mobile 44030, taken user_id 44032', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id], user_id: u.id('ra') });
    await ok(user.delete({ path: { user_id: a.open_id }, data: {} }), 'delete a');
    // someone else takes a's email
    const b = await mkUser(u, { depts: [d.open_department_id], email: a.email });
    await fails(user.resurrect({ path: { user_id: a.open_id }, data: {} }), 44031, 'email taken');
    await ok(user.patch({ path: { user_id: b.open_id }, data: { email: u.email() } }), 'free the email');
    // someone else takes a's mobile
    const c = await mkUser(u, { depts: [d.open_department_id], mobile: a.mobile });
    await fails(user.resurrect({ path: { user_id: a.open_id }, data: {} }), 44030, 'mobile taken');
    await ok(user.patch({ path: { user_id: c.open_id }, data: { mobile: u.mobile() } }), 'free the mobile');
    // someone else takes a's user_id
    const e = await mkUser(u, { depts: [d.open_department_id], user_id: a.user_id });
    await fails(user.resurrect({ path: { user_id: a.open_id }, data: {} }), 44032, 'user_id taken');
    await ok(user.delete({ path: { user_id: e.open_id }, data: {} }), 'free the user_id');
    await ok(user.resurrect({ path: { user_id: a.open_id }, data: {} }), 'now it works');
    assert.equal((await getUser(a.open_id)).status.is_resigned, false);
  });
});

describe('U2 update_user_id', () => {
  test('renames the user_id; the old one stops resolving, open/union ids stay', async () => {
    const d = await mkDept(u);
    const oldId = u.id('old');
    const newId = u.id('new');
    const a = await mkUser(u, { depts: [d.open_department_id], user_id: oldId });
    const data = await ok(
      user.updateUserId({ path: { user_id: a.open_id }, data: { new_user_id: newId } }),
      'update_user_id',
    );
    assert.equal(typeof data, 'object', 'data is an object');
    const back = await getUser(newId, { user_id_type: 'user_id' });
    assert.equal(back.open_id, a.open_id);
    assert.equal(back.union_id, a.union_id);
    assert.equal(back.user_id, newId);
    await fails(user.get({ path: { user_id: oldId }, params: { user_id_type: 'user_id' } }), 41012, 'old user_id');
  });

  test('addressed by user_id itself', async () => {
    const d = await mkDept(u);
    const oldId = u.id('o2');
    const newId = u.id('n2');
    const a = await mkUser(u, { depts: [d.open_department_id], user_id: oldId });
    await ok(
      user.updateUserId({ path: { user_id: oldId }, data: { new_user_id: newId }, params: { user_id_type: 'user_id' } }),
      'update_user_id by user_id',
    );
    assert.equal((await getUser(a.open_id)).user_id, newId);
  });

  test('missing new_user_id 41054; taken 41011; unknown user 41012', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    const b = await mkUser(u, { depts: [d.open_department_id], user_id: u.id('tk') });
    await fails(user.updateUserId({ path: { user_id: a.open_id }, data: {} }), 41054, 'no new_user_id');
    await fails(user.updateUserId({ path: { user_id: a.open_id }, data: { new_user_id: '' } }), 41054, 'empty new_user_id');
    await fails(
      user.updateUserId({ path: { user_id: a.open_id }, data: { new_user_id: b.user_id } }),
      41011,
      'new_user_id taken',
    );
    await fails(
      user.updateUserId({ path: { user_id: OU_UNKNOWN }, data: { new_user_id: u.id('z') } }),
      41012,
      'unknown user',
    );
    assert.equal((await getUser(a.open_id)).user_id, a.user_id, 'unchanged');
  });
});

describe('U3 batch_get_id', () => {
  test('one entry per value; unknown values without user_id; +86 optional', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    const b = await mkUser(u, { depts: [d.open_department_id] });
    const unknownEmail = u.email('nobody');
    const data = await ok(
      user.batchGetId({
        data: { emails: [a.email, unknownEmail], mobiles: [b.mobile.slice(3)] },
      }),
      'batch_get_id',
    );
    const list = data.user_list;
    assert.ok(Array.isArray(list));
    const byEmail = list.find((e) => e.email === a.email);
    assert.equal(byEmail?.user_id, a.open_id, 'open_id by default');
    assert.equal(byEmail?.status?.is_resigned, false);
    const byMobile = list.find((e) => e.mobile === b.mobile.slice(3));
    assert.equal(byMobile?.user_id, b.open_id, 'mobile echoed as sent, matched after normalising');
    const none = list.find((e) => e.email === unknownEmail);
    assert.ok(none, 'unknown value still has an entry');
    assert.equal(none.user_id, undefined);
  });

  test('user_id_type=user_id / union_id', async () => {
    const d = await mkDept(u);
    const uid = u.id('bg');
    const a = await mkUser(u, { depts: [d.open_department_id], user_id: uid });
    const byUid = await ok(
      user.batchGetId({ data: { emails: [a.email] }, params: { user_id_type: 'user_id' } }),
      'as user_id',
    );
    assert.equal(byUid.user_list[0].user_id, uid);
    const byUnion = await ok(
      user.batchGetId({ data: { mobiles: [a.mobile] }, params: { user_id_type: 'union_id' } }),
      'as union_id',
    );
    assert.equal(byUnion.user_list[0].user_id, a.union_id);
  });

  test('resigned users only with include_resigned', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: a.open_id }, data: {} }), 'delete');
    const hidden = await ok(user.batchGetId({ data: { emails: [a.email] } }), 'without include_resigned');
    assert.equal(hidden.user_list.find((e) => e.email === a.email)?.user_id, undefined);
    const shown = await ok(
      user.batchGetId({ data: { emails: [a.email], include_resigned: true } }),
      'with include_resigned',
    );
    const e = shown.user_list.find((x) => x.email === a.email);
    assert.equal(e?.user_id, a.open_id);
    assert.equal(e?.status?.is_resigned, true);
  });

  test('more than 50 emails is 40001', async () => {
    const emails = Array.from({ length: 51 }, () => u.email('many'));
    await fails(user.batchGetId({ data: { emails } }), 40001, '51 emails');
  });
});

describe('U7 logout', () => {
  test('logout by user_id (open_id and user_id types)', async () => {
    const d = await mkDept(u);
    const uid = u.id('lo');
    const a = await mkUser(u, { depts: [d.open_department_id], user_id: uid });
    const data = await ok(
      client.passport.v1.session.logout({
        data: { logout_type: 1, user_id: a.open_id, terminal_type: [1, 2], logout_reason: 34 },
        params: { user_id_type: 'open_id' },
      }),
      'logout',
    );
    assert.equal(typeof data, 'object');
    await ok(
      client.passport.v1.session.logout({
        data: { logout_type: 1, user_id: uid },
        params: { user_id_type: 'user_id' },
      }),
      'logout by user_id',
    );
  });

  test('bad parameters are 1080001', async () => {
    const d = await mkDept(u);
    const a = await mkUser(u, { depts: [d.open_department_id] });
    const logout = (data) => client.passport.v1.session.logout({ data, params: { user_id_type: 'open_id' } });
    await fails(logout({ user_id: a.open_id }), 1080001, 'no logout_type');
    await fails(logout({ logout_type: 1 }), 1080001, 'logout_type 1 without user_id');
    await fails(logout({ logout_type: 1, user_id: OU_UNKNOWN }), 1080001, 'unknown user');
    await fails(logout({ logout_type: 9, user_id: a.open_id }), 1080001, 'unknown logout_type');
  });
});

describe('U8 JSAPI ticket', () => {
  test('returns a ticket and expire_in, and the same ticket while valid', async () => {
    const call = () => client.request({ method: 'POST', url: '/open-apis/jssdk/ticket/get' });
    const a = await ok(call(), 'ticket');
    assert.equal(typeof a.ticket, 'string');
    assert.ok(a.ticket.length >= 16, `ticket ${a.ticket}`);
    assert.ok(Number.isInteger(a.expire_in) && a.expire_in > 0 && a.expire_in <= 7200, `expire_in ${a.expire_in}`);
    const b = await ok(call(), 'ticket again');
    assert.equal(b.ticket, a.ticket);
  });

  test('needs a token (99991661)', async () => {
    const { makeClient } = await import('./lib.mjs');
    const bare = makeClient({ disableTokenCache: true });
    await fails(bare.request({ method: 'POST', url: '/open-apis/jssdk/ticket/get' }), 99991661, 'ticket without token');
  });
});
