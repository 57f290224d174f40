"""Tokens survive a server restart (spec §3): lark-oapi caches the tenant token per app_id for
up to 2 h and never refreshes on 99991663, so a restart that forgets tokens would break every
connected client. This test runs a roster of its own (same binary, its own data dir), lets
lark-oapi cache a token, restarts roster on the same data dir, and calls again with the
cached token."""

import os
import re
import signal
import subprocess
import tempfile
import threading
import queue

import pytest
from lark_oapi.api.contact.v3 import GetDepartmentRequest
from lark_oapi.core.token.manager import TokenManager

import lark_oapi as lark

from conftest import _cli_env, check


class Roster:
    def __init__(self, data_dir: str, database: str = "SDK_PG_RESTART"):
        self.proc = subprocess.Popen(
            [os.environ["ROSTER_BIN"], "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_cli_env(database),
            cwd=data_dir,
        )
        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        self.app_id = self.app_secret = self.base = None
        while self.base is None:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                self.stop()
                pytest.fail("roster did not print its address within 60 s")
            if m := re.match(r"\s*app_id:\s*(\S+)", line):
                self.app_id = m.group(1)
            elif m := re.match(r"\s*app_secret:\s*(\S+)", line):
                self.app_secret = m.group(1)
            elif m := re.match(r"roster listening on (http://\S+)", line):
                self.base = m.group(1).rstrip("/")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _client(app_id, secret, base):
    return (
        lark.Client.builder().app_id(app_id).app_secret(secret).domain(base).log_level(lark.LogLevel.ERROR).build()
    )


def test_cached_token_survives_a_restart():
    with tempfile.TemporaryDirectory(prefix="roster-restart-") as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        first = Roster(data)
        try:
            assert first.app_id and first.app_secret, "first start prints the credentials"
            app_id, secret = first.app_id, first.app_secret
            c1 = _client(app_id, secret, first.base)
            check(c1.contact.v3.department.get(GetDepartmentRequest.builder().department_id("0").build()), "before")
            cached = TokenManager.cache.get(f"self_tenant_token:{app_id}")
            assert cached and cached.startswith("t-")
        finally:
            first.stop()

        second = Roster(data)
        try:
            assert second.app_id is None, "credentials are printed only on the first start"
            c2 = _client(app_id, secret, second.base)
            resp = c2.contact.v3.department.get(GetDepartmentRequest.builder().department_id("0").build())
            assert TokenManager.cache.get(f"self_tenant_token:{app_id}") == cached, "the SDK reused its cached token"
            assert resp.code == 0, f"a token issued before the restart must still work: {resp.raw.content!r}"
        finally:
            second.stop()
