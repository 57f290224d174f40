// Contact v2 batch_add (V1) and task/get (V2) through the Node SDK's raw-request helper
// `client.request` (no typed methods exist for the v2 API): the task id comes back at once,
// polling reaches status 9, and every user's result comes in request order.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { client, ok, fails, uniq, mkDept, getUser } from './lib.mjs';

const u = uniq(61);

async function poll(taskId) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const data = await ok(
      client.request({ method: 'GET', url: '/open-apis/contact/v2/task/get', params: { task_id: taskId } }),
      'task/get',
    );
    if (data.status >= 9) return data;
    assert.ok(Date.now() < deadline, `task not finished: ${JSON.stringify(data)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('batch_add runs as a task; results come in request order with per-user codes', async () => {
  const dept = await mkDept(u, { departmentId: u.id('d') });
  const lead = u.id('lead');
  const users = [
    { name: u.name('Lead'), departments: [dept.open_department_id], user_id: lead, mobile: u.mobile(), email: u.email() },
    { name: u.name('Report'), departments: [dept.department_id], user_id: u.id('rep'), mobile: u.mobile(), leader_user_id: lead },
    { name: u.name('NoMobile'), departments: [dept.open_department_id], user_id: u.id('nm') },
  ];
  const submitted = await ok(
    client.request({ method: 'POST', url: '/open-apis/contact/v2/user/batch_add', data: { users, need_send_notification: false } }),
    'batch_add',
  );
  assert.match(submitted.task_id, /^[0-9a-f]{32}$/);
  const task = await poll(submitted.task_id);
  assert.equal(task.task_id, submitted.task_id);
  assert.equal(task.type, 'add_user');
  assert.equal(task.status, 9);
  assert.equal(task.progress, 100);
  assert.deepEqual([task.total_num, task.success_num, task.fail_num], [3, 2, 1]);
  assert.deepEqual(task.task_info.map((i) => i.code), [0, 0, 41010]);
  assert.equal(task.task_info[0].action, 1);
  assert.equal(task.task_info[1].name, users[1].name);
  assert.deepEqual(task.task_info[1].departments, [dept.department_id]);
  const report = await getUser(task.task_info[1].open_id);
  const leader = await getUser(task.task_info[0].open_id);
  assert.equal(report.leader_user_id, leader.open_id);
  assert.deepEqual(report.department_ids, [dept.open_department_id]);
});

test('batch_add refuses an empty or oversized request at once', async () => {
  await fails(client.request({ method: 'POST', url: '/open-apis/contact/v2/user/batch_add', data: { users: [] } }), 40001);
  const many = Array.from({ length: 51 }, (_, i) => ({ name: `n${i}`, departments: ['0'], mobile: u.mobile() }));
  await fails(client.request({ method: 'POST', url: '/open-apis/contact/v2/user/batch_add', data: { users: many } }), 40001);
  await fails(
    client.request({ method: 'GET', url: '/open-apis/contact/v2/task/get', params: { task_id: '0'.repeat(32) } }),
    40001,
  );
});
