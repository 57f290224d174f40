// A1 tenant_access_token, authentication errors, scopes, tenant isolation, 404/405.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  APP_ID,
  APP_SECRET,
  BASE,
  OD_UNKNOWN,
  cli,
  cliApp,
  cliTenant,
  client,
  fails,
  freshCache,
  getUser,
  lark,
  makeClient,
  mkDept,
  mkUser,
  ok,
  uniq,
} from './lib.mjs';

const u = uniq(1);
const TOKEN_PATH = '/open-apis/auth/v3/tenant_access_token/internal';

/** A client that sends no token unless the call passes lark.withTenantToken(...). */
const bare = makeClient({ disableTokenCache: true });

describe('A1 tenant_access_token/internal', () => {
  test('the typed auth call returns a t- token and an integer expire at the top level', async () => {
    const body = await client.auth.v3.tenantAccessToken.internal({
      data: { app_id: APP_ID, app_secret: APP_SECRET },
    });
    assert.equal(body.code, 0, JSON.stringify(body));
    assert.equal(typeof body.msg, 'string');
    assert.match(body.tenant_access_token, /^t-/);
    assert.ok(Number.isInteger(body.expire), `expire must be an integer: ${JSON.stringify(body)}`);
    assert.ok(body.expire > 1800 && body.expire <= 7200, `expire in (1800, 7200]: ${body.expire}`);
    assert.equal(body.data, undefined, 'A1 has no data object');
  });

  test('a token with >= 30 min left is returned again (same token)', async () => {
    const call = () =>
      client.request({ method: 'POST', url: TOKEN_PATH, data: { app_id: APP_ID, app_secret: APP_SECRET } });
    const a = await call();
    const b = await call();
    assert.equal(a.code, 0);
    assert.equal(a.tenant_access_token, b.tenant_access_token);
    assert.ok(b.expire <= a.expire);
  });

  test("the SDK's TokenManager fetches a token and typed calls use it", async () => {
    const c = makeClient({ cache: freshCache() });
    const token = await c.tokenManager.getTenantAccessToken();
    assert.match(token, /^t-/);
    const data = await ok(
      c.contact.v3.department.get({ path: { department_id: '0' } }),
      'get root department',
    );
    assert.equal(data.department.open_department_id, '0');
  });

  test('wrong secret is 10014, and the SDK refuses to call with it', async () => {
    const body = await fails(
      client.request({ method: 'POST', url: TOKEN_PATH, data: { app_id: APP_ID, app_secret: 'wrong' } }),
      10014,
      'A1 wrong secret',
    );
    assert.equal(body.tenant_access_token, undefined);
    const bad = makeClient({ appSecret: 'definitely-wrong', cache: freshCache() });
    await assert.rejects(
      bad.contact.v3.department.get({ path: { department_id: '0' } }),
      (e) => {
        assert.match(String(e.message ?? e), /tenant_access_token.*10014/);
        return true;
      },
    );
  });

  test('unknown app_id is 10014', async () => {
    await fails(
      client.request({ method: 'POST', url: TOKEN_PATH, data: { app_id: 'cli_0000000000000000', app_secret: 'x' } }),
      10014,
      'A1 unknown app',
    );
  });

  test('missing app_secret is 10003', async () => {
    await fails(
      client.request({ method: 'POST', url: TOKEN_PATH, data: { app_id: APP_ID } }),
      10003,
      'A1 missing secret',
    );
  });
});

describe('authentication errors on a protected endpoint', () => {
  const get0 = (opts) =>
    bare.contact.v3.department.get({ path: { department_id: '0' } }, opts);

  test('no Authorization header is 99991661', async () => {
    await fails(get0(), 99991661, 'no token');
  });

  test('a token not starting with t-/u- is 99991671', async () => {
    await fails(get0(lark.withTenantToken('garbage-token')), 99991671, 'malformed token');
  });

  test('an unknown t- token is 99991663', async () => {
    await fails(get0(lark.withTenantToken(`t-${'a'.repeat(40)}`)), 99991663, 'unknown token');
  });

  test('a token issued by A1 works when passed explicitly', async () => {
    const body = await client.request({
      method: 'POST',
      url: TOKEN_PATH,
      data: { app_id: APP_ID, app_secret: APP_SECRET },
    });
    const data = await ok(get0(lark.withTenantToken(body.tenant_access_token)), 'explicit token');
    assert.equal(data.department.open_department_id, '0');
  });
});

describe('404 / 405 envelopes', () => {
  test('unknown path is HTTP 404 with 99991201 in JSON', async () => {
    await fails(
      client.request({ method: 'GET', url: '/open-apis/contact/v3/no_such_resource' }),
      99991201,
      'unknown path',
      { status: 404 },
    );
  });

  test('wrong method is HTTP 405 with 99991301 in JSON', async () => {
    await fails(
      client.request({ method: 'GET', url: TOKEN_PATH }),
      99991301,
      'GET on a POST-only path',
      { status: 405 },
    );
    await fails(
      client.request({ method: 'PUT', url: '/open-apis/contact/v3/users/batch_get_id', data: {} }),
      99991301,
      'PUT on batch_get_id',
      { status: 405 },
    );
  });
});

describe('app scopes', () => {
  test('a read-only app reads but cannot write (99991672)', async () => {
    const dept = await mkDept(u);
    const ro = cliApp({ scopes: 'contact:read' });
    const c = makeClient({ appId: ro.appId, appSecret: ro.appSecret });
    const data = await ok(
      c.contact.v3.department.get({ path: { department_id: dept.open_department_id } }),
      'read-only get department',
    );
    assert.equal(data.department.name, dept.name);
    const mobile = u.mobile();
    await fails(
      c.contact.v3.user.create({
        data: { name: u.name(), mobile, employee_type: 1, department_ids: [dept.open_department_id] },
      }),
      99991672,
      'read-only create user',
    );
    await fails(
      c.contact.v3.department.create({ data: { name: u.name('RO'), parent_department_id: '0' } }),
      99991672,
      'read-only create department',
    );
    // nothing was created
    const ids = await ok(client.contact.v3.user.batchGetId({ data: { mobiles: [mobile] } }), 'batch_get_id');
    assert.ok(!ids.user_list?.some((e) => e.user_id), `no user with ${mobile}: ${JSON.stringify(ids)}`);
  });

  test('a department-scoped app gets 40004 outside its subtree', async () => {
    const inside = await mkDept(u, { name: u.name('Inside') });
    const insideChild = await mkDept(u, { parent: inside.open_department_id });
    const outside = await mkDept(u, { name: u.name('Outside') });
    const scoped = cliApp({ departments: [inside.open_department_id] });
    const c = makeClient({ appId: scoped.appId, appSecret: scoped.appSecret });

    // inside: readable and writable, subtree included
    await ok(c.contact.v3.department.get({ path: { department_id: inside.open_department_id } }), 'get inside');
    await ok(
      c.contact.v3.department.get({ path: { department_id: insideChild.open_department_id } }),
      'get inside child',
    );
    const user = await mkUser(u, { c, depts: [insideChild.open_department_id] });
    assert.deepEqual(user.department_ids, [insideChild.open_department_id]);
    // The whole department sent back (PUT) names its parent, which this app does not see:
    // not a move, so not refused. A real move under an unseen parent still is.
    const read = (await ok(c.contact.v3.department.get({ path: { department_id: inside.open_department_id } }), 'read inside')).department;
    assert.equal(read.parent_department_id, '0');
    const renamed = u.name('InsideRenamed');
    const put = await ok(
      c.contact.v3.department.update({
        path: { department_id: inside.open_department_id },
        data: { name: renamed, parent_department_id: read.parent_department_id },
      }),
      'PUT of its own department, parent unchanged',
    );
    assert.equal(put.department.name, renamed);
    await fails(
      c.contact.v3.department.update({
        path: { department_id: insideChild.open_department_id },
        data: { name: u.name('Moved'), parent_department_id: outside.open_department_id },
      }),
      40004,
      'a move under an unseen parent',
      { status: 403 },
    );

    // outside: 40004 (HTTP 403)
    await fails(
      c.contact.v3.department.get({ path: { department_id: outside.open_department_id } }),
      40004,
      'get outside department',
      { status: 403 },
    );
    await fails(
      c.contact.v3.department.children({ path: { department_id: outside.open_department_id } }),
      40004,
      'children of outside department',
    );
    await fails(
      c.contact.v3.user.findByDepartment({ params: { department_id: outside.open_department_id } }),
      40004,
      'find_by_department outside',
    );
    await fails(
      c.contact.v3.user.create({
        data: {
          name: u.name(),
          mobile: u.mobile(),
          employee_type: 1,
          department_ids: [outside.open_department_id],
        },
      }),
      40004,
      'create user outside scope',
    );
    await fails(
      c.contact.v3.department.create({
        data: { name: u.name('Sneaky'), parent_department_id: outside.open_department_id },
      }),
      40004,
      'create department under outside parent',
    );
  });

  test('a department-scoped app cannot name a user outside its subtree in any reference', async () => {
    const inside = await mkDept(u, { name: u.name('In') });
    const outside = await mkDept(u, { name: u.name('Out') });
    const outsider = await mkUser(u, { depts: [outside.open_department_id] });
    const scoped = cliApp({ departments: [inside.open_department_id] });
    const c = makeClient({ appId: scoped.appId, appSecret: scoped.appSecret });
    const member = await mkUser(u, { c, depts: [inside.open_department_id] });

    // A department's leader, its deputies and a user's dotted-line leaders: "no such user".
    await fails(
      c.contact.v3.department.create({
        data: {
          name: u.name('Led'),
          parent_department_id: inside.open_department_id,
          leader_user_id: outsider.open_id,
        },
      }),
      44022,
      'department led by an unseen user',
    );
    await fails(
      c.contact.v3.department.patch({
        path: { department_id: inside.open_department_id },
        data: { leaders: [{ leaderType: 1, leaderID: member.open_id }, { leaderType: 2, leaderID: outsider.open_id }] },
      }),
      44022,
      'an unseen deputy',
    );
    await fails(
      c.contact.v3.user.patch({
        path: { user_id: member.open_id },
        data: { dotted_line_leader_user_ids: [outsider.open_id] },
      }),
      44022,
      'an unseen dotted-line leader',
    );
    // A hand-over to an unseen user: 41052, and the user stays.
    await fails(
      c.contact.v3.user.delete({
        path: { user_id: member.open_id },
        data: { department_chat_acceptor_user_id: outsider.open_id },
      }),
      41052,
      'an unseen acceptor',
    );
    const still = await getUser(member.open_id);
    assert.equal(still.status.is_resigned, false, 'not deleted');
    assert.deepEqual(still.dotted_line_leader_user_ids ?? [], [], 'no dotted-line leader written');
    const dept = await ok(
      client.contact.v3.department.get({ path: { department_id: inside.open_department_id } }),
      'department',
    );
    assert.ok(!JSON.stringify(dept).includes(outsider.open_id), `no unseen leader written: ${JSON.stringify(dept)}`);
  });
});

describe('tenant isolation', () => {
  test("another tenant's app sees none of this tenant's users or departments", async () => {
    const dept = await mkDept(u);
    const user = await mkUser(u, { depts: [dept.open_department_id] });
    const tenant = cliTenant(`conf-${u.tag}-${Date.now()}`);
    const other = cliApp({ tenant });
    const c = makeClient({ appId: other.appId, appSecret: other.appSecret });
    await fails(c.contact.v3.user.get({ path: { user_id: user.open_id } }), 41012, 'cross-tenant user');
    await fails(
      c.contact.v3.department.get({ path: { department_id: dept.open_department_id } }),
      40015,
      'cross-tenant department',
    );
    // the other tenant may reuse the same mobile: uniqueness is per tenant
    const root = await ok(c.contact.v3.department.get({ path: { department_id: '0' } }), 'other root');
    assert.equal(root.department.open_department_id, '0');
    const twin = await ok(
      c.contact.v3.user.create({
        data: { name: u.name(), mobile: user.mobile, employee_type: 1, department_ids: ['0'] },
      }),
      'the same mobile is free in another tenant',
    );
    assert.notEqual(twin.user.open_id, user.open_id);
    // A page token works only in the tenant that issued it, even on the "same" list.
    await mkDept(u);
    const first = await ok(
      client.contact.v3.department.children({ path: { department_id: '0' }, params: { page_size: 1 } }),
      'first page of the root children',
    );
    assert.ok(first.has_more && first.page_token, 'this tenant has more than one top department');
    await fails(
      c.contact.v3.department.children({
        path: { department_id: '0' },
        params: { page_size: 1, page_token: first.page_token },
      }),
      40012,
      "another tenant's page token",
    );
    await fails(
      c.contact.v3.department.get({ path: { department_id: OD_UNKNOWN } }),
      40015,
      'unknown department',
    );
  });
});

describe('licence cap', () => {
  test('a tenant with --max-users 2 refuses the third active user (41008); resigned users free a seat', async () => {
    const out = cli('tenant', 'create', '--name', `capped-${u.tag}-${Date.now()}`, '--max-users', '2');
    const tenant = Number(out.match(/tenant (\d+) created/)?.[1]);
    assert.ok(tenant > 1, out);
    const app = cliApp({ tenant });
    const c = makeClient({ appId: app.appId, appSecret: app.appSecret });
    const a = await mkUser(u, { c, depts: ['0'] });
    await mkUser(u, { c, depts: ['0'] });
    await fails(
      c.contact.v3.user.create({ data: { name: u.name(), mobile: u.mobile(), employee_type: 1, department_ids: ['0'] } }),
      41008,
      'third user over the cap',
    );
    await ok(c.contact.v3.user.delete({ path: { user_id: a.open_id }, data: {} }), 'delete one');
    await mkUser(u, { c, depts: ['0'] });
    await fails(
      c.contact.v3.user.resurrect({ path: { user_id: a.open_id }, data: {} }),
      41008,
      'resurrect over the cap',
    );
  });
});

test('BASE has no trailing slash (lark-oapi would reject it)', () => {
  assert.ok(!BASE.endsWith('/'));
});
