"""The real server the remote backend talks to, called directly: what each remote kind relies on.

llama-cpp-python's server on the tiny random Qwen2 GGUF (tests/remote/llama_server.py). The
answers are junk text from random weights, so these tests assert the API's shape and the
behaviour dg-lsp depends on: the FIM prompt is accepted (its markers are single special
tokens, and `suffix` reaches the prompt), `max_tokens` and `stop` are honoured, streaming
sends chunks that add up to the non-streamed answer, logprobs come back, a client that drops
a stream mid-way leaves the server serving, an API key is enforced, and `/infill` is absent.
Where llama.cpp's own `llama-server` is found (tests/remote/llama_server.py says how), the same
for its `/infill`: the FIM prompt built from the GGUF's FIM tokens, streaming, probabilities,
and its `/v1/completions` ignoring `suffix`.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error

import pytest

from tests.remote.llama_server import (
    KIND_INFILL,
    KIND_OPENAI,
    KIND_OPENAI_SUFFIX,
    MODEL_ALIAS,
    RealServer,
    free_port,
    get_json,
    post_json,
    post_stream,
    start_llama_cpp_python_server,
    wait_until_ready,
)
from tests.remote.tiny_gguf import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, SPECIAL_TOKENS

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\n\nprint(add(1, 2))\n"
FIM_PROMPT = f"{FIM_PREFIX}{PREFIX}{FIM_SUFFIX}{SUFFIX}{FIM_MIDDLE}"
# End-of-generation tokens kept out, so that a random model always runs to max_tokens.
NO_SPECIALS = {str(token_id): -100.0 for token_id in range(len(SPECIAL_TOKENS))}


def complete(server: RealServer, **body) -> dict:
    return post_json(f"{server.url}/v1/completions",
                     {"model": server.model, "temperature": 0, "seed": 0, "logit_bias": NO_SPECIALS, **body})


def tokenize(server: RealServer, text: str) -> list[int]:
    return post_json(f"{server.url}/extras/tokenize", {"input": text})["tokens"]


def test_the_server_lists_its_model_and_kinds(llama_server: RealServer):
    models = get_json(f"{llama_server.url}/v1/models")
    assert [model["id"] for model in models["data"]] == [MODEL_ALIAS]
    assert llama_server.supports(KIND_OPENAI) and llama_server.supports(KIND_OPENAI_SUFFIX)
    assert not llama_server.supports(KIND_INFILL)


def test_fim_markers_in_a_rendered_prompt_are_single_special_tokens(llama_server: RealServer):
    tokens = tokenize(llama_server, FIM_PROMPT)
    marker_ids = [SPECIAL_TOKENS.index(marker) for marker in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)]
    assert [t for t in tokens if t in marker_ids] == marker_ids
    assert tokens[0] == marker_ids[0] and tokens[-1] == marker_ids[2]
    assert len(tokens) == 3 + len(tokenize(llama_server, PREFIX)) + len(tokenize(llama_server, SUFFIX))


def test_openai_kind_answers_a_rendered_fim_prompt(llama_server: RealServer):
    answer = complete(llama_server, prompt=FIM_PROMPT, max_tokens=6)
    assert answer["object"] == "text_completion"
    assert answer["model"] == MODEL_ALIAS
    (choice,) = answer["choices"]
    assert isinstance(choice["text"], str) and choice["text"]
    assert choice["index"] == 0 and choice["finish_reason"] == "length"
    assert answer["usage"]["prompt_tokens"] == len(tokenize(llama_server, FIM_PROMPT))
    assert answer["usage"]["completion_tokens"] == 6
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + 6


def test_openai_suffix_kind_puts_the_suffix_into_the_prompt(llama_server: RealServer):
    with_suffix = complete(llama_server, prompt=PREFIX, suffix=SUFFIX, max_tokens=4)
    without = complete(llama_server, prompt=PREFIX, max_tokens=4)
    prefix_tokens, suffix_tokens = len(tokenize(llama_server, PREFIX)), len(tokenize(llama_server, SUFFIX))
    assert without["usage"]["prompt_tokens"] == prefix_tokens
    # The server wraps prefix and suffix in its own three FIM markers.
    assert with_suffix["usage"]["prompt_tokens"] == prefix_tokens + suffix_tokens + 3
    assert with_suffix["choices"][0]["finish_reason"] == "length"
    assert with_suffix["usage"]["completion_tokens"] == 4


@pytest.mark.parametrize("max_tokens", [1, 3, 9])
def test_max_tokens_is_respected(llama_server: RealServer, max_tokens: int):
    answer = complete(llama_server, prompt=FIM_PROMPT, max_tokens=max_tokens)
    assert answer["usage"]["completion_tokens"] == max_tokens
    assert len(tokenize(llama_server, answer["choices"][0]["text"])) <= max_tokens + 1  # re-tokenizing may merge


def test_a_stop_string_cuts_the_answer(llama_server: RealServer):
    full = complete(llama_server, prompt=FIM_PROMPT, max_tokens=12)["choices"][0]["text"]
    stop = full[len(full) // 2:len(full) // 2 + 2]
    assert stop.strip(), f"the greedy answer is too short or blank to cut: {full!r}"
    cut = complete(llama_server, prompt=FIM_PROMPT, max_tokens=12, stop=[stop])["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == full[:full.index(stop)]


def test_streaming_sends_chunks_that_add_up_to_the_answer(llama_server: RealServer):
    whole = complete(llama_server, prompt=FIM_PROMPT, max_tokens=8)["choices"][0]["text"]
    events = list(post_stream(f"{llama_server.url}/v1/completions",
                              {"model": llama_server.model, "prompt": FIM_PROMPT, "max_tokens": 8,
                               "temperature": 0, "seed": 0, "logit_bias": NO_SPECIALS}))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len(chunks) >= 2, "a streamed answer of 8 tokens came in one piece"
    assert all(chunk["object"] == "text_completion" and len(chunk["choices"]) == 1 for chunk in chunks)
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks[:-1])


def test_logprobs_come_back_per_token(llama_server: RealServer):
    answer = complete(llama_server, prompt=FIM_PROMPT, max_tokens=5, logprobs=1)
    logprobs = answer["choices"][0]["logprobs"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == 5
    assert "".join(logprobs["tokens"]) == answer["choices"][0]["text"]
    assert all(isinstance(value, float) and value <= 0.0 for value in logprobs["token_logprobs"])
    assert all(len(top) >= 1 for top in logprobs["top_logprobs"])


def test_a_client_that_drops_a_stream_leaves_the_server_serving(llama_server: RealServer):
    # What dg-lsp does when a newer keystroke supersedes a request: close the connection mid-stream.
    stream = post_stream(f"{llama_server.url}/v1/completions",
                         {"model": llama_server.model, "prompt": FIM_PROMPT, "max_tokens": 200,
                          "temperature": 0, "logit_bias": NO_SPECIALS})
    first = next(stream)
    assert first["choices"][0]["text"] is not None
    stream.close()  # closes the HTTP response, so the socket
    answer = complete(llama_server, prompt=FIM_PROMPT, max_tokens=2)
    assert answer["usage"]["completion_tokens"] == 2


def test_infill_is_not_served_by_llama_cpp_python(llama_server: RealServer):
    with pytest.raises(urllib.error.HTTPError) as error:
        post_json(f"{llama_server.url}/infill", {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 4})
    assert error.value.code == 404


def test_an_api_key_is_enforced(tiny_gguf, tmp_path):
    from tests.remote.llama_server import require_llama_cpp_server

    require_llama_cpp_server()
    with start_llama_cpp_python_server(tiny_gguf, tmp_path, api_key="right-key") as server:
        body = {"model": server.model, "prompt": FIM_PROMPT, "max_tokens": 1}
        for key in (None, "wrong-key"):
            with pytest.raises(urllib.error.HTTPError) as error:
                post_json(f"{server.url}/v1/completions", body, api_key=key)
            assert error.value.code == 401, key
        assert post_json(f"{server.url}/v1/completions", body, api_key="right-key")["usage"]["completion_tokens"] == 1


def test_a_server_that_cannot_start_fails_the_fixture_with_its_log(tmp_path):
    from tests.remote.llama_server import require_llama_cpp_server

    require_llama_cpp_server()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a GGUF file")
    with pytest.raises(RuntimeError, match="exited with code") as error:
        with start_llama_cpp_python_server(broken, tmp_path, ready_timeout=60):
            pass
    assert "its log" in str(error.value)


def test_a_server_that_never_answers_times_out_clearly(tmp_path):
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError, match=r"did not answer GET /v1/models within 1 s"):
            wait_until_ready(f"http://127.0.0.1:{free_port()}", silent, tmp_path / "none.log", timeout=1.0)
    finally:
        silent.kill()
        silent.wait()



# -- llama.cpp's llama-server: the `llamacpp-infill` kind (skips where no llama-server is found) --

INFILL_BODY = {"input_prefix": PREFIX, "input_suffix": SUFFIX,
               "input_extra": [{"filename": "helpers.py", "text": "def sub(a, b):\n    return a - b\n"}],
               "temperature": 0, "seed": 0, "cache_prompt": True,
               "logit_bias": [[token_id, False] for token_id in range(len(SPECIAL_TOKENS))]}


def test_infill_builds_the_fim_prompt_from_the_gguf_tokens(llama_infill_server: RealServer):
    assert llama_infill_server.supports(KIND_INFILL)
    answer = post_json(f"{llama_infill_server.url}/infill", {**INFILL_BODY, "n_predict": 5})
    assert isinstance(answer["content"], str) and answer["content"]
    assert answer["tokens_predicted"] == 5 and answer["stop_type"] == "limit"
    bare = post_json(f"{llama_infill_server.url}/infill",
                     {**INFILL_BODY, "input_extra": [], "input_suffix": "", "n_predict": 1})
    # Prefix, suffix and extra context all reach the prompt, wrapped in the FIM tokens.
    assert answer["tokens_evaluated"] > bare["tokens_evaluated"] > len(tokenize_llama(llama_infill_server, PREFIX))


def tokenize_llama(server: RealServer, text: str) -> list[int]:
    return post_json(f"{server.url}/tokenize", {"content": text})["tokens"]


def test_infill_streams_its_pieces(llama_infill_server: RealServer):
    whole = post_json(f"{llama_infill_server.url}/infill", {**INFILL_BODY, "n_predict": 6})["content"]
    events = [e for e in post_stream(f"{llama_infill_server.url}/infill", {**INFILL_BODY, "n_predict": 6})
              if e != "[DONE]"]
    assert len(events) >= 2
    assert "".join(event["content"] for event in events) == whole
    assert events[-1]["stop"] is True and all(event["stop"] is False for event in events[:-1])


def test_infill_returns_token_probabilities(llama_infill_server: RealServer):
    answer = post_json(f"{llama_infill_server.url}/infill", {**INFILL_BODY, "n_predict": 4, "n_probs": 1})
    probabilities = answer["completion_probabilities"]
    assert len(probabilities) == 4
    assert "".join(entry["token"] for entry in probabilities) == answer["content"]
    assert all(entry["logprob"] <= 0.0 for entry in probabilities)


def test_llama_server_ignores_suffix_on_v1_completions(llama_infill_server: RealServer):
    # Why `openai-suffix` is not a llama-server kind: its OpenAI endpoint drops the field without a word.
    def prompt_tokens(**extra) -> int:
        answer = post_json(f"{llama_infill_server.url}/v1/completions",
                           {"model": llama_infill_server.model, "prompt": PREFIX, "max_tokens": 2, "temperature": 0,
                            **extra})
        assert answer["usage"]["completion_tokens"] <= 2
        return answer["usage"]["prompt_tokens"]

    assert prompt_tokens(suffix=SUFFIX) == prompt_tokens() == len(tokenize_llama(llama_infill_server, PREFIX))
    rendered = post_json(f"{llama_infill_server.url}/v1/completions",
                         {"model": llama_infill_server.model, "prompt": FIM_PROMPT, "max_tokens": 3,
                          "temperature": 0})
    assert rendered["usage"]["completion_tokens"] <= 3 and rendered["object"] == "text_completion"
