"""Contact v2 batch_add through lark-oapi's raw-request helper, with invitations delivered
by real SMTP to a local aiosmtpd sink, and the activation links followed.

This test runs a roster of its own (same binary, its own data dir) configured with the
sink's address as smtp_url, so that the shared server of the suite stays as it is."""

import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request

import lark_oapi as lark
from aiosmtpd.controller import Controller
from lark_oapi.api.contact.v3 import GetUserRequest

from conftest import _cli_env, check
from test_restart import Roster


class Sink:
    """Collects every message the SMTP server receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


def _raw(client, method, uri, body=None, queries=None):
    builder = (
        lark.BaseRequest.builder()
        .http_method(method)
        .uri(uri)
        .token_types({lark.AccessTokenType.TENANT})
        .headers({"Content-Type": "application/json; charset=utf-8"})
    )
    if body is not None:
        builder = builder.body(body)
    if queries:
        builder = builder.queries(queries)
    resp = client.request(builder.build())
    return json.loads(resp.raw.content)


def test_batch_add_task_with_invitations_over_smtp():
    sink = Sink()
    # aiosmtpd's start() connects to its own port to check it is up, so it needs a real
    # port number rather than 0: take a free one from the kernel first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    data = tempfile.mkdtemp(prefix="roster-smtp-")
    with open(os.path.join(data, "roster.toml"), "w") as f:
        f.write(f'smtp_url = "smtp://127.0.0.1:{port}"\nmail_from = "Roster <noreply@roster.test>"\n')
    roster = Roster(data, "SDK_PG_BATCH")
    try:
        client = (
            lark.Client.builder()
            .app_id(roster.app_id)
            .app_secret(roster.app_secret)
            .domain(roster.base)
            .log_level(lark.LogLevel.ERROR)
            .build()
        )
        body = {
            "users": [
                {"name": "Mail One", "departments": ["0"], "user_id": "mail1",
                 "email": "one@invite.example.com", "mobile": "+8613911110001"},
                {"name": "Mail Two", "departments": ["0"], "user_id": "mail2",
                 "email": "two@invite.example.com", "mobile": "+8613911110002", "leader_user_id": "mail1"},
                {"name": "Phone Only", "departments": ["0"], "user_id": "phone3", "mobile": "+8613911110003"},
                {"name": "Bad", "departments": ["0"], "user_id": "bad4", "mobile": "not a phone"},
            ],
            "need_send_notification": True,
        }
        submitted = _raw(client, lark.HttpMethod.POST, "/open-apis/contact/v2/user/batch_add", body=body)
        assert submitted["code"] == 0, submitted
        task_id = submitted["data"]["task_id"]

        deadline = time.time() + 60
        while True:
            task = _raw(client, lark.HttpMethod.GET, "/open-apis/contact/v2/task/get", queries=[("task_id", task_id)])
            assert task["code"] == 0, task
            if task["data"]["status"] >= 9:
                break
            assert time.time() < deadline, task
            time.sleep(0.1)
        data_ = task["data"]
        assert (data_["status"], data_["success_num"], data_["fail_num"]) == (9, 3, 1), data_
        assert [i["code"] for i in data_["task_info"]] == [0, 0, 0, 41004]

        # Two e-mails arrive at the sink (the mobile-only user gets a recorded SMS notice).
        deadline = time.time() + 30
        while len(sink.messages) < 2:
            assert time.time() < deadline, f"mails received: {sink.messages}"
            time.sleep(0.1)
        time.sleep(0.5)
        assert len(sink.messages) == 2, sink.messages
        recipients = sorted(r for rcpts, _ in sink.messages for r in rcpts)
        assert recipients == ["one@invite.example.com", "two@invite.example.com"]

        # Invited users are not yet activated; following the link activates them, once.
        user = check(client.contact.v3.user.get(
            GetUserRequest.builder().user_id("mail1").user_id_type("user_id").build()), "get mail1")
        assert user.data.user.status.is_activated is False
        assert user.data.user.status.is_unjoin is True
        content = next(c for rcpts, c in sink.messages if "one@invite.example.com" in rcpts)
        link = re.search(r"(http://\S+/activate/[0-9a-f]+)", content.replace("=\r\n", "").replace("=\n", ""))
        assert link, content
        with urllib.request.urlopen(link.group(1)) as resp:
            assert resp.status == 200
            assert json.loads(resp.read())["status"] == "activated"
        user = check(client.contact.v3.user.get(
            GetUserRequest.builder().user_id("mail1").user_id_type("user_id").build()), "get mail1")
        assert user.data.user.status.is_activated is True
        assert user.data.user.status.is_unjoin is False
        try:
            urllib.request.urlopen(link.group(1))
            raise AssertionError("a used link must not work twice")
        except urllib.error.HTTPError as e:
            assert e.code == 404

        # The SMS notice is recorded in the outbox, and the e-mails are marked sent.
        out = subprocess.run(
            [os.environ["ROSTER_BIN"], "--data-dir", data, "outbox", "list"],
            capture_output=True, text=True, env=_cli_env("SDK_PG_BATCH"), cwd=data, check=True,
        ).stdout
        assert re.search(r"sms\s+\+8613911110003\s+recorded", out), out
        assert len(re.findall(r"email\s+\S+\s+sent", out)) == 2, out
    finally:
        roster.stop()
        controller.stop()
