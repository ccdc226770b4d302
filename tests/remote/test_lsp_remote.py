"""`dg-lsp serve` with the remote engine, end to end over stdio, against the in-process test double
(`fake_http_server`): a server that is down, then comes up; a request aborted by a newer keystroke.
The real server's end-to-end tests are in test_through_server.py."""

import asyncio
import time

import pytest
from lsprotocol import types

from ..server.test_e2e import change, inline, open_doc, plain, status, wait_for_log
from .fake_http_server import Behaviour, FakeCompletionServer
from .remote_lsp import shown, start_remote_server

URI = "file:///work/add.py"
TEXT = "def add(a, b):\n    return \n"


@pytest.fixture
def fake():
    server = FakeCompletionServer().start()
    yield server
    server.stop()


@pytest.mark.asyncio
async def test_server_down_one_message_status_says_why_then_completions_resume(fake):
    fake.stop()  # down from the start: connections are refused
    client = await start_remote_server({"url": fake.url})
    try:
        open_doc(client, URI, TEXT, "python")
        deadline = time.monotonic() + 3.0  # several keystrokes, across more than one backoff
        version = 1
        while time.monotonic() < deadline:
            version += 1
            change(client, URI, version, (1, 11), (1, 11), "a")
            change(client, URI, version + 1, (1, 11), (1, 12), "")
            version += 1
            result = await inline(client, URI, 1, 11)
            assert not result.items
            await asyncio.sleep(0.2)
        assert len(shown(client, "remote server unreachable")) == 1, [m.message for m in client.messages]
        assert "cannot connect" in shown(client, "remote server unreachable")[0]
        state = plain(await status(client))
        assert state["engine"] == "remote" and state["state"] == "unreachable"
        assert "cannot connect" in state["error"] and state["remote"]["failures"] >= 2

        fake.behaviour = Behaviour(text="a + b", pieces=2)
        fake.start()  # the same port: the server is back
        deadline, items = time.monotonic() + 20, []
        while not items and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            items = (await inline(client, URI, 1, 11)).items
        assert [i.insert_text for i in items] == ["a + b"]  # resumed by itself, post-processed as usual
        assert shown(client, "answers again") and plain(await status(client))["state"] == "ready"
        body = fake.requests[-1].body
        assert "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>" in body["prompt"] and body["logprobs"] == 1
    finally:
        await client.shutdown_session()
        await client.stop()


@pytest.mark.asyncio
async def test_a_newer_keystroke_aborts_the_request_in_flight(fake):
    fake.behaviour = Behaviour(mode="hold")  # the first request streams one chunk, then stalls
    client = await start_remote_server({"url": fake.url, "timeoutMs": 8000})
    try:
        open_doc(client, URI, TEXT, "python")
        first = asyncio.ensure_future(inline(client, URI, 1, 11))
        deadline = time.monotonic() + 10
        while not fake.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert fake.requests, "the first request never reached the server"
        started = time.monotonic()
        assert plain(await status(client))["state"] == "ready"  # the server answers while a request hangs
        assert time.monotonic() - started < 1.0
        fake.behaviour = Behaviour(text="a * b")
        change(client, URI, 2, (1, 11), (1, 11), "a")
        second = await inline(client, URI, 1, 12)
        assert fake.closed_event.wait(3.0) and fake.requests[0].closed_early  # the server saw the client go
        assert not (await first).items
        assert [i.insert_text for i in second.items] == ["a * b"]  # the newer one is answered
        state = plain(await status(client))
        assert state["remote"]["aborted"] == 1 and state["state"] == "ready" and not shown(client, "unreachable")
    finally:
        await client.shutdown_session()
        await client.stop()


@pytest.mark.asyncio
async def test_a_remote_setting_that_cannot_work_is_reported_then_fixed_by_a_settings_change(fake):
    client = await start_remote_server({"url": fake.url, "family": ""}, expect_failure=True)
    try:
        assert shown(client, "set dgLsp.remote.family")  # kind openai needs a template
        state = plain(await status(client))
        assert state["state"] == "failed" and "dgLsp.remote.family" in state["error"]
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": {
            "engine": "remote", "remote": {"url": fake.url, "family": "starcoder"}}}))
        await wait_for_log(client, "remote engine ready", timeout=30)
        open_doc(client, URI, TEXT, "python")
        fake.behaviour = Behaviour(text="a - b")
        assert [i.insert_text for i in (await inline(client, URI, 1, 11)).items] == ["a - b"]
        assert fake.requests[-1].body["prompt"].startswith("<fim_prefix>def add")
    finally:
        await client.shutdown_session()
        await client.stop()
