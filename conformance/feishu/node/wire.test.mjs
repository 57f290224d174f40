// Spec §2 conventions that the SDKs rely on, checked on the raw wire (fetch) where the SDK
// hides them: JSON content type everywhere, Feishu envelopes instead of framework rejections,
// bodies parsed whatever the Content-Type, booleans in any case, percent-encoded paths.

import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test, before } from 'node:test';

import { APP_ID, APP_SECRET, BASE, mkDept, mkUser, uniq } from './lib.mjs';

const u = uniq(6);
let token;

async function raw(method, path, { body, headers = {}, auth = true } = {}) {
  const h = { ...headers };
  if (auth) h.Authorization = `Bearer ${token}`;
  const res = await fetch(`${BASE}${path}`, { method, headers: h, body });
  const text = await res.text();
  const ctype = res.headers.get('content-type') ?? '';
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${path}: body is not JSON (HTTP ${res.status}, ${ctype}): ${JSON.stringify(text)}`);
  }
  assert.match(ctype, /^application\/json/, `${method} ${path}: content-type ${ctype}`);
  assert.equal(typeof json.msg, 'string', `${method} ${path}: msg must be a string`);
  assert.equal(typeof json.code, 'number', `${method} ${path}: code must be a number`);
  return { status: res.status, json, ctype };
}

before(async () => {
  const res = await fetch(`${BASE}/open-apis/auth/v3/tenant_access_token/internal`, {
    method: 'POST',
    body: JSON.stringify({ app_id: APP_ID, app_secret: APP_SECRET }),
  });
  token = (await res.json()).tenant_access_token;
  assert.match(token, /^t-/);
});

describe('wire conventions', () => {
  test('A1 without any Content-Type header', async () => {
    const { status, json } = await raw('POST', '/open-apis/auth/v3/tenant_access_token/internal', {
      body: new TextEncoder().encode(JSON.stringify({ app_id: APP_ID, app_secret: APP_SECRET })),
      auth: false,
    });
    assert.equal(status, 200);
    assert.equal(json.code, 0);
    assert.ok(Number.isInteger(json.expire));
  });

  test('A1 with a malformed body is 10003 in JSON', async () => {
    const { json } = await raw('POST', '/open-apis/auth/v3/tenant_access_token/internal', {
      body: '{not json',
      headers: { 'Content-Type': 'application/json' },
      auth: false,
    });
    assert.equal(json.code, 10003);
  });

  test('success envelope: code 0, msg string, data object, charset utf-8', async () => {
    const { status, json, ctype } = await raw('GET', '/open-apis/contact/v3/departments/0');
    assert.equal(status, 200);
    assert.equal(json.code, 0);
    assert.equal(typeof json.data, 'object');
    assert.match(ctype, /charset=utf-8/i);
  });

  test('malformed JSON body is a 40001 envelope, not a framework rejection', async () => {
    const { status, json } = await raw('POST', '/open-apis/contact/v3/users', {
      body: '{"name": ',
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(json.code, 40001);
    assert.equal(status, 400);
  });

  test('wrong JSON types are a 40001 envelope (not 422)', async () => {
    const { status, json } = await raw('POST', '/open-apis/contact/v3/users', {
      body: JSON.stringify({ name: { not: 'a string' }, department_ids: 'nope' }),
      headers: { 'Content-Type': 'application/json' },
    });
    assert.notEqual(status, 422);
    assert.equal(json.code, 40001);
  });

  test('a JSON body with text/plain (or no) Content-Type is parsed', async () => {
    const d = await mkDept(u);
    for (const headers of [{ 'Content-Type': 'text/plain' }, {}]) {
      const text = JSON.stringify({
        name: u.name(),
        mobile: u.mobile(),
        employee_type: 1,
        department_ids: [d.open_department_id],
      });
      // fetch labels a string body text/plain; bytes go out with no Content-Type at all
      const body = headers['Content-Type'] ? text : new TextEncoder().encode(text);
      const { json } = await raw('POST', '/open-apis/contact/v3/users', { body, headers });
      assert.equal(json.code, 0, JSON.stringify(json));
      assert.match(json.data.user.open_id, /^ou_/);
    }
  });

  test('a body on GET is ignored (the Node SDK sends {} on GETs)', async () => {
    // fetch refuses a body on GET, so these go out through node:http, as axios (the SDK's
    // client) sends them. A malformed body is ignored too: a GET's body means nothing.
    for (const body of ['{}', '{']) {
      const { status, text } = await new Promise((resolve, reject) => {
        const req = http.request(`${BASE}/open-apis/contact/v3/departments/0`, {
          method: 'GET',
          headers: {
            Authorization: `Bearer ${token}`,
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(body),
          },
        }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => { text += c; });
          res.on('end', () => resolve({ status: res.statusCode, text }));
        });
        req.on('error', reject);
        req.end(body);
      });
      const json = JSON.parse(text);
      assert.equal(status, 200, `body ${body}: ${text}`);
      assert.equal(json.code, 0, `body ${body}: ${text}`);
      assert.equal(json.data.department.open_department_id, '0', text);
    }
  });

  test('an empty POST body means {} (lark-oapi resurrect without request_body)', async () => {
    const d = await mkDept(u);
    const user = await mkUser(u, { depts: [d.open_department_id] });
    const del = await raw('DELETE', `/open-apis/contact/v3/users/${user.open_id}`, {
      body: JSON.stringify({}),
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(del.json.code, 0);
    const res = await raw('POST', `/open-apis/contact/v3/users/${user.open_id}/resurrect`, {
      headers: { 'Content-Length': '0' },
    });
    assert.equal(res.json.code, 0, JSON.stringify(res.json));
    const ticket = await raw('POST', '/open-apis/jssdk/ticket/get');
    assert.equal(ticket.json.code, 0);
  });

  test('booleans in query strings in any case (True/FALSE/true)', async () => {
    const top = await mkDept(u);
    const a = await mkDept(u, { parent: top.open_department_id });
    await mkDept(u, { parent: a.open_department_id });
    for (const [v, n] of [['True', 2], ['TRUE', 2], ['true', 2], ['False', 1], ['false', 1]]) {
      const { json } = await raw(
        'GET',
        `/open-apis/contact/v3/departments/${top.open_department_id}/children?fetch_child=${v}`,
      );
      assert.equal(json.code, 0, `fetch_child=${v}: ${JSON.stringify(json)}`);
      assert.equal(json.data.items.length, n, `fetch_child=${v}`);
    }
    const { json } = await raw('GET', `/open-apis/contact/v3/departments/${top.open_department_id}/children?fetch_child=maybe`);
    assert.equal(json.code, 40001);
  });

  test('path parameters are percent-decoded once (user_id with @ . and /)', async () => {
    const d = await mkDept(u);
    const uid = `w.${u.tag}@x-${u.id()}`;
    const user = await mkUser(u, { depts: [d.open_department_id], user_id: uid });
    const { json } = await raw(
      'GET',
      `/open-apis/contact/v3/users/${encodeURIComponent(uid)}?user_id_type=user_id`,
    );
    assert.equal(json.code, 0, JSON.stringify(json));
    assert.equal(json.data.user.open_id, user.open_id);
    // %2F inside a segment is data, not a path separator
    const slash = await raw('GET', `/open-apis/contact/v3/users/a%2Fb?user_id_type=user_id`);
    assert.equal(slash.json.code, 41012, JSON.stringify(slash.json));
  });

  test('unknown paths are 404 JSON even without a token; known paths check the token', async () => {
    const nf = await raw('GET', '/open-apis/contact/v3/nope', { auth: false });
    assert.equal(nf.status, 404);
    assert.equal(nf.json.code, 99991201);
    const other = await raw('GET', '/not-open-apis-at-all', { auth: false });
    assert.equal(other.status, 404);
    assert.equal(other.json.code, 99991201);
    const na = await raw('GET', '/open-apis/contact/v3/departments/0', { auth: false });
    assert.equal(na.json.code, 99991661);
  });

  test('405 carries JSON for every method on a known path', async () => {
    for (const m of ['PUT', 'DELETE', 'PATCH']) {
      const r = await raw(m, '/open-apis/jssdk/ticket/get', { body: '{}' });
      assert.equal(r.status, 405, m);
      assert.equal(r.json.code, 99991301, m);
    }
  });
});
