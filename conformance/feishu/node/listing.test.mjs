// U12 find_by_department and U4 search: pagination under concurrent inserts, iterators, errors.

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

const u = uniq(5);
const user = client.contact.v3.user;

const noDuplicates = (ids) => assert.equal(new Set(ids).size, ids.length, `duplicates in ${ids}`);

describe('U12 find_by_department', () => {
  test('lists direct, active members only, in both department id types', async () => {
    const customId = u.id('fd');
    const d = await mkDept(u, { departmentId: customId, params: { department_id_type: 'department_id' } });
    const child = await mkDept(u, { parent: d.open_department_id });
    const a = await mkUser(u, { depts: [d.open_department_id] });
    const b = await mkUser(u, { depts: [d.open_department_id, child.open_department_id] });
    const inChild = await mkUser(u, { depts: [child.open_department_id] });
    const gone = await mkUser(u, { depts: [d.open_department_id] });
    await ok(user.delete({ path: { user_id: gone.open_id }, data: {} }), 'delete');

    const data = await ok(user.findByDepartment({ params: { department_id: d.open_department_id } }), 'by open id');
    assert.deepEqual(data.items.map((x) => x.open_id).sort(), [a.open_id, b.open_id].sort());
    assert.equal(data.has_more, false);
    assert.ok(!data.items.some((x) => x.open_id === inChild.open_id), 'sub-department members are not direct');

    const byCustom = await ok(
      user.findByDepartment({
        params: { department_id: customId, department_id_type: 'department_id', user_id_type: 'union_id' },
      }),
      'by custom id',
    );
    assert.deepEqual(byCustom.items.map((x) => x.union_id).sort(), [a.union_id, b.union_id].sort());
    const bb = byCustom.items.find((x) => x.open_id === b.open_id);
    assert.ok(bb.department_ids.includes(customId), 'department_ids in department_id_type');
    assert.ok(bb.department_ids.includes(child.department_id));
  });

  test('page_token loop is complete and duplicate-free while users are added between pages', async () => {
    const d = await mkDept(u);
    const initial = [];
    for (let i = 0; i < 7; i += 1) initial.push((await mkUser(u, { depts: [d.open_department_id] })).open_id);
    const added = [];
    const seen = await allPages(
      async (page_token) =>
        ok(
          user.findByDepartment({ params: { department_id: d.open_department_id, page_size: 3, page_token } }),
          'page',
        ),
      {
        between: async () => {
          added.push((await mkUser(u, { depts: [d.open_department_id] })).open_id);
        },
      },
    );
    const ids = seen.map((x) => x.open_id);
    noDuplicates(ids);
    for (const id of initial) assert.ok(ids.includes(id), `initial member ${id} listed`);
    assert.ok(added.length >= 2, 'users were added between pages');
    // and a fresh listing sees everybody
    const all = await allPages(async (page_token) =>
      ok(user.findByDepartment({ params: { department_id: d.open_department_id, page_size: 50, page_token } }), 'all'),
    );
    assert.deepEqual(all.map((x) => x.open_id).sort(), [...initial, ...added].sort());
  });

  test('a user deleted between pages does not make the loop skip anyone', async () => {
    const d = await mkDept(u);
    const ids = [];
    for (let i = 0; i < 6; i += 1) ids.push((await mkUser(u, { depts: [d.open_department_id] })).open_id);
    let victim;
    const seen = await allPages(
      async (page_token) =>
        ok(user.findByDepartment({ params: { department_id: d.open_department_id, page_size: 2, page_token } }), 'page'),
      {
        between: async (i) => {
          if (i === 0) {
            // delete the last user of the first page (the one the page token points at)
            victim = ids[1];
            await ok(user.delete({ path: { user_id: victim }, data: {} }), 'delete between pages');
          }
        },
      },
    );
    const got = seen.map((x) => x.open_id);
    noDuplicates(got);
    for (const id of ids.slice(2)) assert.ok(got.includes(id), `${id} after the deleted one is still listed`);
  });

  test('page_size defaults to 10', async () => {
    const d = await mkDept(u);
    for (let i = 0; i < 12; i += 1) await mkUser(u, { depts: [d.open_department_id] });
    const first = await ok(user.findByDepartment({ params: { department_id: d.open_department_id } }), 'default page');
    assert.equal(first.items.length, 10);
    assert.equal(first.has_more, true);
    const second = await ok(
      user.findByDepartment({ params: { department_id: d.open_department_id, page_token: first.page_token } }),
      'second page',
    );
    assert.equal(second.items.length, 2);
    assert.equal(second.has_more, false);
    assert.equal(second.page_token ?? '', '', 'no page_token on the last page');
  });

  test('findByDepartmentWithIterator terminates and yields everyone once', async () => {
    const d = await mkDept(u);
    const ids = [];
    for (let i = 0; i < 5; i += 1) ids.push((await mkUser(u, { depts: [d.open_department_id] })).open_id);
    const it = await user.findByDepartmentWithIterator({
      params: { department_id: d.open_department_id, page_size: 2 },
    });
    const got = [];
    let pages = 0;
    for await (const page of it) {
      pages += 1;
      assert.ok(pages < 50, 'iterator must terminate');
      assert.ok(page, 'the iterator yields null only when a request failed');
      got.push(...(page.items ?? []).map((x) => x.open_id));
    }
    noDuplicates(got);
    assert.deepEqual(got.sort(), ids.sort());
    assert.equal(pages, 3);
  });

  test('errors: page_size 40011, bad page_token 40012, unknown department 40015, missing department_id', async () => {
    const d = await mkDept(u);
    const q = (params) => user.findByDepartment({ params: { department_id: d.open_department_id, ...params } });
    await fails(q({ page_size: 51 }), 40011, 'page_size 51');
    await fails(q({ page_size: -1 }), 40011, 'page_size -1');
    await fails(q({ page_token: 'forged' }), 40012, 'forged page_token');
    await fails(user.findByDepartment({ params: { department_id: OD_UNKNOWN } }), 40015, 'unknown department');
    // department_id is required: 40001 (param error); 40015 would also tell the caller what is wrong
    const missing = await envelope(user.findByDepartment({ params: {} }));
    assert.ok([40001, 40015].includes(missing.body?.code), `no department_id: ${JSON.stringify(missing.body)}`);
    await fails(q({ department_id_type: 'bogus' }), 40001, 'unknown department_id_type');
  });

  test('the iterator stops (yields an empty page) on an error instead of looping', async () => {
    const it = await user.findByDepartmentWithIterator({ params: { department_id: OD_UNKNOWN } });
    let pages = 0;
    for await (const page of it) {
      pages += 1;
      assert.ok(pages < 5);
      // The SDK hands out the error's (absent) data as an empty object: no items of any
      // department.
      assert.deepEqual(page ?? {}, {}, `page ${pages}: ${JSON.stringify(page)}`);
    }
    assert.equal(pages, 1);
  });
});

describe('U4 search (/open-apis/search/v1/user)', () => {
  const search = (params) => client.request({ method: 'GET', url: '/open-apis/search/v1/user', params });

  test('finds users by name substring; users[] with ids and open department ids', async () => {
    const d = await mkDept(u);
    const word = `Zq${u.id()}`;
    const a = await mkUser(u, { depts: [d.open_department_id], name: `${word} Alpha`, user_id: u.id('sa') });
    const b = await mkUser(u, { depts: [d.open_department_id], name: `Beta ${word}` });
    await mkUser(u, { depts: [d.open_department_id], name: u.name('Unrelated') });
    const data = await ok(search({ query: word }), 'search');
    assert.ok(Array.isArray(data.users), `data.users: ${JSON.stringify(data)}`);
    assert.equal(data.has_more, false);
    assert.deepEqual(data.users.map((x) => x.open_id).sort(), [a.open_id, b.open_id].sort());
    const hit = data.users.find((x) => x.open_id === a.open_id);
    assert.equal(hit.user_id, a.user_id);
    assert.equal(hit.name, a.name);
    assert.deepEqual(hit.department_ids, [d.open_department_id]);
    assert.equal(typeof hit.avatar, 'object');
  });

  test('page_size defaults to 20', async () => {
    const d = await mkDept(u);
    const word = `Df${u.id()}`;
    for (let i = 0; i < 22; i += 1) await mkUser(u, { depts: [d.open_department_id], name: `${word} ${i}` });
    const first = await ok(search({ query: word }), 'default page');
    assert.equal(first.users.length, 20);
    assert.equal(first.has_more, true);
    const second = await ok(search({ query: word, page_token: first.page_token }), 'second page');
    assert.equal(second.users.length, 2);
    assert.equal(second.has_more, false);
  });

  test('resigned users are never returned', async () => {
    const d = await mkDept(u);
    const word = `Xr${u.id()}`;
    const a = await mkUser(u, { depts: [d.open_department_id], name: `${word} one` });
    const b = await mkUser(u, { depts: [d.open_department_id], name: `${word} two` });
    await ok(user.delete({ path: { user_id: b.open_id }, data: {} }), 'delete');
    const data = await ok(search({ query: word }), 'search');
    assert.deepEqual(data.users.map((x) => x.open_id), [a.open_id]);
  });

  test('page_token loop is complete and duplicate-free while users are added between pages', async () => {
    const d = await mkDept(u);
    const word = `Pg${u.id()}`;
    const initial = [];
    for (let i = 0; i < 7; i += 1) {
      initial.push((await mkUser(u, { depts: [d.open_department_id], name: `${word} ${i}` })).open_id);
    }
    let k = 100;
    const seen = await allPages(async (page_token) => ok(search({ query: word, page_size: 2, page_token }), 'page'), {
      listKey: 'users',
      between: async () => {
        k += 1;
        await mkUser(u, { depts: [d.open_department_id], name: `${word} ${k}` });
      },
    });
    const ids = seen.map((x) => x.open_id);
    noDuplicates(ids);
    for (const id of initial) assert.ok(ids.includes(id), `${id} listed`);
  });

  test('LIKE wildcards in the query match literally (% and _)', async () => {
    const d = await mkDept(u);
    const tag = u.id('w');
    const pct = await mkUser(u, { depts: [d.open_department_id], name: `${tag} 100%` });
    const und = await mkUser(u, { depts: [d.open_department_id], name: `${tag} a_b` });
    await mkUser(u, { depts: [d.open_department_id], name: `${tag} axb` });
    for (const [q, want] of [
      ['%', pct],
      ['a_b', und],
    ]) {
      const all = await allPages(
        async (page_token) => ok(search({ query: q, page_size: 200, page_token }), `search ${q}`),
        { listKey: 'users' },
      );
      for (const hit of all) assert.ok(hit.name.includes(q), `search ${JSON.stringify(q)} returned ${hit.name}`);
      assert.ok(all.some((x) => x.open_id === want.open_id), `search ${q} finds ${want.name}`);
    }
  });

  test('errors: empty/missing query 40001, page_size > 200 40011, bad page_token 40012', async () => {
    await fails(search({ query: '' }), 40001, 'empty query');
    await fails(search({}), 40001, 'missing query');
    await fails(search({ query: 'a', page_size: 201 }), 40011, 'page_size 201');
    await fails(search({ query: 'a', page_token: 'forged' }), 40012, 'forged page_token');
    const max = await ok(search({ query: 'a', page_size: 200 }), 'page_size 200');
    assert.ok(Array.isArray(max.users));
  });
});
