// Shared helpers for the Node SDK conformance suite.
//
// The SDK is installed by scripts/sdk-conformance.sh under target/sdk/node (never in this
// folder), so it is loaded with createRequire from ROSTER_NODE_SDK_DIR rather than by a bare
// import. Environment (set by the script):
//   ROSTER_BASE        http://127.0.0.1:PORT (no trailing slash)
//   ROSTER_APP_ID      the first-start app (scopes contact:read,contact:write, whole directory)
//   ROSTER_APP_SECRET  its secret
//   ROSTER_BIN         the roster binary (for `tenant create` / `app create`)
//   ROSTER_DATA_DIR    the server's --data-dir (the CLI works on the same SQLite store)
//   ROSTER_NODE_SDK_DIR  where package.json + node_modules of the SDK live
//   ROSTER_SDK_LOG     SDK logger level (fatal|error|warn|info|debug); default fatal

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdkDir =
  process.env.ROSTER_NODE_SDK_DIR || path.resolve(here, '../../../target/sdk/node');
const require = createRequire(path.join(sdkDir, 'package.json'));

/** The official SDK, `@larksuiteoapi/node-sdk`. */
export const lark = require('@larksuiteoapi/node-sdk');

function need(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run the suite through scripts/sdk-conformance.sh`);
  }
  return v;
}

export const BASE = need('ROSTER_BASE');
export const APP_ID = need('ROSTER_APP_ID');
export const APP_SECRET = need('ROSTER_APP_SECRET');

// The SDK logs every failed request at error level; the negative tests make many on purpose.
// Silent unless ROSTER_SDK_LOG names a level (note: level 0 `fatal` is falsy in the SDK and
// falls back to `info`, so silence is a no-op logger instead).
const silent = { fatal() {}, error() {}, warn() {}, info() {}, debug() {}, trace() {} };
const logOptions = process.env.ROSTER_SDK_LOG
  ? { loggerLevel: lark.LoggerLevel[process.env.ROSTER_SDK_LOG] ?? lark.LoggerLevel.error }
  : { loggerLevel: lark.LoggerLevel.error, logger: silent };

/** A small in-memory token cache, so that clients in one test do not share tokens. */
export function freshCache() {
  const values = new Map();
  return {
    async get(key, opts) {
      const v = values.get(`${opts?.namespace}/${String(key)}`);
      if (!v) return undefined;
      if (v.expiredTime && v.expiredTime < Date.now()) return undefined;
      return v.value;
    },
    async set(key, value, expiredTime, opts) {
      values.set(`${opts?.namespace}/${String(key)}`, { value, expiredTime });
      return true;
    },
  };
}

/** A client for an app; by default the first-start app with the SDK's shared token cache. */
export function makeClient({ appId = APP_ID, appSecret = APP_SECRET, ...rest } = {}) {
  return new lark.Client({
    appId,
    appSecret,
    domain: BASE,
    ...logOptions,
    ...rest,
  });
}

/** The main client (full scopes, whole directory). */
export const client = makeClient();

// ---------------------------------------------------------------------------------------
// Unique values. Every test file passes its own series (00-89) so files running in parallel
// never pick the same mobile; the counter starts at a random offset so that re-running
// against a long-lived server does not collide either.

export function uniq(series) {
  assert.ok(series >= 0 && series < 100);
  let counter = randomInt(0, 900_000);
  const tag = randomBytes(3).toString('hex');
  let n = 0;
  return {
    /** A valid mainland mobile in +86 form: +86 138 SS CCCCCC. */
    mobile() {
      counter = (counter + 1) % 1_000_000;
      return `+86138${String(series).padStart(2, '0')}${String(counter).padStart(6, '0')}`;
    },
    email(prefix = 'u') {
      n += 1;
      return `${prefix}.${tag}.${series}.${n}@conformance.example.com`;
    },
    name(prefix = 'User') {
      n += 1;
      return `${prefix} ${tag}-${series}-${n}`;
    },
    /** A caller-chosen id (user_id / department_id) matching ^[a-zA-Z0-9][a-zA-Z0-9_\-@.]{0,63}$. */
    id(prefix = 'x') {
      n += 1;
      return `${prefix}${tag}${series}n${n}`;
    },
    tag,
  };
}

// ---------------------------------------------------------------------------------------
// Calling and checking.

/**
 * Awaits an SDK call and returns the Feishu envelope whether the server answered 2xx (the
 * SDK resolves with the body) or not (axios throws; the body is on err.response.data).
 * Transport failures (no response at all) are rethrown.
 */
export async function envelope(promise) {
  try {
    const body = await promise;
    return { status: 200, body };
  } catch (e) {
    if (e && e.response) {
      const ctype = String(e.response.headers?.['content-type'] ?? '');
      return { status: e.response.status, body: e.response.data, ctype };
    }
    throw e;
  }
}

/** Asserts a success envelope (code 0) and returns its `data` (or the whole body for A1). */
export async function ok(promise, what = 'call') {
  const { status, body } = await envelope(promise);
  assert.ok(
    body && typeof body === 'object' && body.code === 0,
    `${what}: expected code 0, got HTTP ${status} ${JSON.stringify(body)}`,
  );
  assert.equal(typeof body.msg, 'string', `${what}: msg must be a string`);
  return body.data;
}

/**
 * Asserts an error envelope with `code` (and, when given, HTTP `status`). The body must be
 * a JSON object with a string `msg`, and non-2xx answers must be JSON.
 */
export async function fails(promise, code, what = 'call', { status } = {}) {
  const res = await envelope(promise);
  const { body } = res;
  assert.ok(
    body && typeof body === 'object',
    `${what}: expected a JSON envelope with code ${code}, got HTTP ${res.status} ${JSON.stringify(body)}`,
  );
  assert.equal(
    body.code,
    code,
    `${what}: expected code ${code}, got HTTP ${res.status} ${JSON.stringify(body)}`,
  );
  assert.equal(typeof body.msg, 'string', `${what}: msg must be a string`);
  if (res.ctype !== undefined) {
    assert.match(res.ctype, /^application\/json/, `${what}: error content-type`);
  }
  if (status !== undefined) {
    assert.equal(res.status, status, `${what}: HTTP status for code ${code}`);
  }
  return body;
}

// ---------------------------------------------------------------------------------------
// Fixtures through the SDK's typed methods.

/** Creates a department (under the root unless `parent` is given); returns the department. */
export async function mkDept(u, { parent = '0', name, departmentId, c = client, params = {} } = {}) {
  const data = await ok(
    c.contact.v3.department.create({
      data: {
        name: name ?? u.name('Dept'),
        parent_department_id: parent,
        ...(departmentId ? { department_id: departmentId } : {}),
      },
      params,
    }),
    'create department',
  );
  assert.ok(data?.department?.open_department_id?.startsWith('od-'), 'open_department_id');
  return data.department;
}

/** Creates a user in the given departments (open_department_ids by default). */
export async function mkUser(u, { depts, c = client, params = {}, ...fields } = {}) {
  const body = {
    name: u.name(),
    mobile: u.mobile(),
    email: u.email(),
    employee_type: 1,
    department_ids: depts,
    ...fields,
  };
  const data = await ok(c.contact.v3.user.create({ data: body, params }), 'create user');
  assert.ok(data?.user?.open_id?.startsWith('ou_'), `open_id in ${JSON.stringify(data)}`);
  return data.user;
}

export async function getUser(openId, params = {}, c = client) {
  const data = await ok(
    c.contact.v3.user.get({ path: { user_id: openId }, params }),
    `get user ${openId}`,
  );
  return data.user;
}

/** Follows page_token until has_more is false; asserts the pagination contract. */
export async function allPages(fetchPage, { listKey = 'items', maxPages = 200, between } = {}) {
  const out = [];
  let token;
  for (let i = 0; i < maxPages; i += 1) {
    const data = await fetchPage(token);
    assert.ok(Array.isArray(data[listKey]), `${listKey} must be an array: ${JSON.stringify(data)}`);
    assert.equal(typeof data.has_more, 'boolean', `has_more must be a bool: ${JSON.stringify(data)}`);
    out.push(...data[listKey]);
    if (!data.has_more) return out;
    assert.ok(data.page_token, `has_more=true needs a page_token: ${JSON.stringify(data)}`);
    assert.notEqual(data.page_token, token, 'page_token must advance');
    token = data.page_token;
    if (between) await between(i);
  }
  assert.fail(`pagination did not end within ${maxPages} pages`);
}

// ---------------------------------------------------------------------------------------
// The administration CLI on the server's store.

/**
 * The CLI reads its settings from ROSTER_* variables and refuses unknown ones, so the suite's
 * own ROSTER_BASE/ROSTER_APP_ID/… must not reach it.
 */
function cliEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('ROSTER_')) env[k] = v;
  }
  // On a PostgreSQL run the CLI shares the server's database.
  if (process.env.SDK_PG_MAIN) env.ROSTER_DATABASE_URL = process.env.SDK_PG_MAIN;
  return { ...env, RUST_LOG: 'warn', ROSTER_LOG: 'warn' };
}

export function cli(...args) {
  const bin = need('ROSTER_BIN');
  const dataDir = need('ROSTER_DATA_DIR');
  const res = spawnSync(bin, ['--data-dir', dataDir, ...args], {
    encoding: 'utf8',
    env: cliEnv(),
    timeout: 60_000,
  });
  assert.equal(
    res.status,
    0,
    `roster ${args.join(' ')} failed (${res.status}): ${res.stdout}\n${res.stderr}`,
  );
  return res.stdout;
}

function field(out, key) {
  const line = out.split('\n').find((l) => l.trim().startsWith(`${key}:`));
  assert.ok(line, `no ${key}: in ${out}`);
  return line.trim().slice(key.length + 1).trim();
}

/** Creates a tenant with the CLI; returns its numeric id. */
export function cliTenant(name) {
  const out = cli('tenant', 'create', '--name', name);
  const m = out.match(/tenant (\d+) created/);
  assert.ok(m, `tenant id in ${out}`);
  return Number(m[1]);
}

/** Creates an app with the CLI; returns {appId, appSecret}. */
export function cliApp({ tenant = 1, scopes, departments } = {}) {
  const args = ['app', 'create', '--tenant', String(tenant)];
  if (scopes) args.push('--scopes', scopes);
  if (departments) args.push('--departments', departments.join(','));
  const out = cli(...args);
  return { appId: field(out, 'app_id'), appSecret: field(out, 'app_secret') };
}

export const OU_UNKNOWN = `ou_${'0'.repeat(31)}1`;
export const OD_UNKNOWN = `od-${'0'.repeat(31)}1`;
