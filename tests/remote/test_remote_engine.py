"""The remote engine against the in-process test double (`fake_http_server`), for what a real server
cannot be made to do on demand: refuse connections, answer 401/4xx/5xx or malformed JSON, stall, and
show that an aborted request closes its connection. The real server's tests are in test_through_server.py."""

import re
import threading
import time

import pytest

from dg_lsp.errors import Cancelled, EngineUnavailable, ModelLoadError
from dg_lsp.remote import RemoteEngine
from dg_lsp.server.settings import RemoteSettings

from .fake_http_server import Behaviour, FakeCompletionServer


OPEN: list[RemoteEngine] = []


@pytest.fixture
def fake():
    server = FakeCompletionServer().start()
    yield server
    server.stop()
    while OPEN:
        OPEN.pop().close()


def engine_for(fake, events=None, **settings):
    options = {"url": fake.url, "family": "qwen", "timeoutMs": 2000, **settings}
    engine = RemoteEngine(RemoteSettings(**options), 1024,
                          on_event=(lambda kind, message: events.append((kind, message))) if events is not None else None)
    engine.health.initial_backoff_s = 0.2  # short outages keep the test short
    OPEN.append(engine)
    return engine


def complete(engine, cancel=None):
    prompt = engine.prompts.build("def add(a, b):\n    ", "\n", "", key="file:///a.py")
    return engine.generate(prompt, canvas_length=32, cancel=cancel)


def test_a_streamed_answer_with_probabilities(fake):
    fake.behaviour = Behaviour(text="return a + b", pieces=3, logprob=-0.5)
    engine = engine_for(fake)
    generation = complete(engine)
    assert engine.remote_status()["confidenceGate"] is True
    assert "".join(generation.rows[0]) == "return a + b" and len(generation.rows[0]) == 3
    assert generation.confidences[0] == [pytest.approx(0.6065, abs=1e-3)] * 3
    (request,) = fake.requests
    assert request.path == "/v1/completions" and request.body["max_tokens"] == 32 and request.body["stream"]


def test_a_server_that_refuses_logprobs_gets_the_request_again_without(fake):
    fake.behaviour = Behaviour(refuse_logprobs=True, text="x + 1")
    events = []
    engine = engine_for(fake, events)
    generation = complete(engine)
    assert "".join(generation.rows[0]) == "x + 1" and set(generation.confidences[0]) == {1.0}  # ungated
    assert ["logprobs" in r.body for r in fake.requests] == [True, False]
    assert [kind for kind, _ in events] == ["notice"] and engine.health.state == "ok"
    assert engine.remote_status()["confidenceGate"] is False and not engine.remote_status()["logprobs"]
    complete(engine)
    assert "logprobs" not in fake.requests[-1].body  # not asked again


@pytest.mark.parametrize("behaviour, reason", [
    (Behaviour(mode="status", status=401, body='{"error": {"message": "Invalid API key"}}'), "refused the API key"),
    (Behaviour(mode="status", status=403, body="forbidden"), "refused the API key"),
    (Behaviour(mode="status", status=400, body='{"error": {"message": "suffix is not supported"}}'),
     "rejected the request (400): suffix is not supported"),
    (Behaviour(mode="status", status=503, body="overloaded"), "server error (503): overloaded"),
    (Behaviour(mode="malformed"), "not JSON"),
    (Behaviour(mode="slow", delay_s=1.5), "within 500 ms"),
])
def test_failures_are_clear_and_told_once_per_outage(fake, behaviour, reason):
    fake.behaviour = behaviour
    events = []
    engine = engine_for(fake, events, timeoutMs=500)
    for _ in range(3):  # the first one fails; the next two wait out the backoff, saying why
        with pytest.raises(EngineUnavailable, match=re.escape(reason)):
            complete(engine)
    assert [kind for kind, _ in events] == ["outage"] and reason in events[0][1]
    # During the backoff nothing was sent after the first failure.
    assert len(fake.requests) == 1 and engine.remote_status()["state"] == "unreachable"
    fake.behaviour = Behaviour(text="ok")
    time.sleep(0.25)
    assert "".join(complete(engine).rows[0]) == "ok"  # the probe after the backoff
    assert [kind for kind, _ in events] == ["outage", "recovered"] and engine.remote_status()["state"] == "ok"


def test_a_refused_connection_then_the_server_comes_back(fake):
    events = []
    engine = engine_for(fake, events)
    fake.stop()
    with pytest.raises(EngineUnavailable, match="cannot connect"):
        complete(engine)
    time.sleep(0.25)
    with pytest.raises(EngineUnavailable, match="cannot connect"):  # the probe fails: backoff doubles
        complete(engine)
    assert engine.health.failures == 2 and 0.2 < engine.health.retry_in_s() <= 0.4
    fake.start()
    time.sleep(0.45)
    assert complete(engine).rows[0]
    assert [kind for kind, _ in events] == ["outage", "recovered"]


def test_a_cancelled_request_closes_its_connection(fake):
    fake.behaviour = Behaviour(mode="hold")
    engine = engine_for(fake)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        complete(engine, cancel=cancel.is_set)
    assert time.monotonic() - start < 1.0  # the worker is free at once, not at the timeout
    assert fake.closed_event.wait(2.0) and fake.requests[0].closed_early  # the server saw the client go
    assert engine.health.state == "untried"  # a cancellation is no outage
    fake.behaviour = Behaviour(text="next")
    assert "".join(complete(engine).rows[0]) == "next"


def test_the_api_key_comes_from_the_named_environment_variable(fake, monkeypatch):
    monkeypatch.setenv("DG_TEST_REMOTE_KEY", "sk-test-123")
    complete(engine_for(fake, apiKeyEnv="DG_TEST_REMOTE_KEY"))
    assert fake.requests[0].headers.get("Authorization") == "Bearer sk-test-123"
    monkeypatch.delenv("DG_TEST_REMOTE_KEY")
    with pytest.raises(ModelLoadError, match="DG_TEST_REMOTE_KEY, which is not set"):
        engine_for(fake, apiKeyEnv="DG_TEST_REMOTE_KEY")


def test_infill_kind_and_commands(fake):
    fake.behaviour = Behaviour(text="a + b<|endoftext|>ignored", pieces=1)
    engine = engine_for(fake, kind="llamacpp-infill")
    completion = engine.infill("def add(a, b):\n    return ", "\n", context="# path: x.py\n")
    assert completion.text == "a + b"  # cut at the stop string the server sent anyway
    assert fake.requests[0].path == "/infill" and fake.requests[0].body["input_prefix"].endswith("return ")
    rewrite = engine.rewrite("def f():\n    ", "return 1", "\n")
    assert rewrite.text == "a + b" and 16 <= fake.requests[1].body["n_predict"] <= 256


def test_a_url_with_v1_is_the_same_server(fake):
    engine = engine_for(fake, url=fake.url + "/v1/")
    assert "".join(complete(engine).rows[0]) == "return a + b"
    assert fake.requests[0].path == "/v1/completions"


def test_a_one_line_request_stops_the_server_at_the_line_break(fake):
    """The server shows one line of a line-mode completion: the remote server need not write more."""
    fake.behaviour = Behaviour(text="return a + b")
    engine = engine_for(fake)
    prompt = engine.prompts.build("def add(a, b):\n    ", "\n", "", key="file:///a.py")
    engine.generate(prompt, canvas_length=32, one_line=True)
    engine.generate(prompt, canvas_length=32)
    one_line, block = (request.body.get("stop", []) for request in fake.requests)
    assert "\n" in one_line and "\n" not in block
    assert set(block) <= set(one_line)  # the template's own stops stay
