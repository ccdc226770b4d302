"""dg-lsp with the remote engine against a real server, over stdio as an editor talks to it:
llama-cpp-python's OpenAI-compatible server on the tiny FIM GGUF the tests build
(`llama_server.py`), for the kinds it serves (`openai`, `openai-suffix`), and llama.cpp's own
`llama-server` for `llamacpp-infill` where one is installed. The model is random, so its text is
junk: the tests check that dg-lsp's completion is what the same server answers to the same
prompt when called directly, through dg-lsp's post-processing, and that a wrong API key is
reported once.
"""

import pytest

from dg_lsp.remote.prompts import TextPromptBuilder
from dg_lsp.remote.protocol import cut_at_stops, request_for
from dg_lsp.remote.templates import FAMILIES

from ..server.test_e2e import inline, open_doc, plain, status
from .llama_server import KIND_INFILL, KIND_OPENAI, KIND_OPENAI_SUFFIX, post_json, start_llama_cpp_python_server
from .remote_lsp import shown, start_remote_server

URI = "file:///work/notes.txt"
TEXT = "alpha beta gamma\ndelta epsilon\n"  # plain text: no syntax check drops the junk
CURSOR = (0, 11)  # after "alpha beta "


def direct_text(server, kind: str, plan: dict) -> str:
    """What the server answers, called directly, to the prompt dg-lsp builds for `plan`."""
    offset = CURSOR[1]
    assert plan["prefixChars"] == offset  # a one-line prefix: the plan kept all of it
    prefix, suffix = TEXT[:offset], TEXT[offset : offset + plan["suffixChars"]]
    template = FAMILIES["qwen"]
    prompt = TextPromptBuilder(template, 2048).build(prefix, suffix, plan["context"])
    path, body = request_for(kind, prompt, template, model=server.model, max_tokens=plan["canvasLength"],
                             seed=0, logprobs=False)
    body["stream"] = False
    answer = post_json(server.url + path, body, api_key=server.api_key)
    text = answer["content"] if kind == KIND_INFILL else answer["choices"][0]["text"]
    return "".join(cut_at_stops([text], [1.0], template.stops)[0])


async def completes_like_the_server_directly(server, kind: str):
    client = await start_remote_server({"url": server.url, "kind": kind, "model": server.model,
                                        "timeoutMs": 60000}, minConfidence=0.0, enabledLanguages=["*"])
    try:
        open_doc(client, URI, TEXT, "plaintext")
        result = await inline(client, URI, *CURSOR, invoked=True)
        state = plain(await status(client))
        assert state["state"] == "ready" and state["remote"]["state"] == "ok", state
        assert state["remote"]["requests"] >= 1 and not shown(client, "unreachable")
        # Both servers return token probabilities (in their own formats): the confidence gate reads them.
        assert state["remote"]["logprobs"] and state["remote"]["confidenceGate"] is True, state["remote"]
        plan = plain(await client.protocol.send_request_async("dg/plan", {
            "textDocument": {"uri": URI}, "position": {"line": CURSOR[0], "character": CURSOR[1]}}))
        expected = direct_text(server, kind, plan)
        texts = [item.insert_text for item in result.items]
        # dg-lsp's post-processing keeps the start of the server's line (a line completion).
        first_line = expected.split("\n", 1)[0]
        if first_line.strip():
            assert texts and first_line.startswith(texts[0].rstrip()) and texts[0].strip(), (texts, expected)
        else:  # the server's answer starts with a line break: nothing for the rest of this line
            assert all(first_line.startswith(t.rstrip()) for t in texts), (texts, expected)
    finally:
        await client.shutdown_session()
        await client.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [KIND_OPENAI, KIND_OPENAI_SUFFIX])
async def test_llama_cpp_python_server(llama_server, kind):
    assert llama_server.supports(kind)
    await completes_like_the_server_directly(llama_server, kind)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [KIND_INFILL, KIND_OPENAI])
async def test_llama_cpp_llama_server(llama_infill_server, kind):
    assert llama_infill_server.supports(kind)
    await completes_like_the_server_directly(llama_infill_server, kind)


@pytest.mark.asyncio
async def test_a_wrong_api_key_is_reported_once(tiny_gguf, tmp_path):
    with start_llama_cpp_python_server(tiny_gguf, tmp_path, api_key="team-key") as server:
        client = await start_remote_server({"url": server.url, "model": server.model, "apiKeyEnv": "DG_TEST_KEY",
                                            "timeoutMs": 60000}, env={"DG_TEST_KEY": "wrong-key"},
                                           enabledLanguages=["*"])
        try:
            open_doc(client, URI, TEXT, "plaintext")
            for _ in range(3):
                assert not (await inline(client, URI, *CURSOR)).items
            messages = shown(client, "refused the API key")
            assert len(messages) == 1 and "401" in messages[0]
            state = plain(await status(client))
            assert state["state"] == "unreachable" and "API key" in state["error"]
            assert "wrong-key" not in str(state) and not any("wrong-key" in m.message for m in client.messages)
        finally:
            await client.shutdown_session()
            await client.stop()
