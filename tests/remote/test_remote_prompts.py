"""The remote engine's pure parts: templates, the text prompt budget, request bodies and answer parsing."""

import json
import math
from pathlib import Path

import pytest

from dg_lsp.errors import ModelLoadError
from dg_lsp.remote.engine import _template_and_tokenizer
from dg_lsp.remote.prompts import CHARS_PER_TOKEN, TextPromptBuilder
from dg_lsp.remote.protocol import Choice, MalformedAnswer, cut_at_stops, error_message, parse_event, request_for
from dg_lsp.remote.templates import FAMILIES, from_tokenizer
from dg_lsp.remote.tokenizer import read_tokenizer
from dg_lsp.server.settings import RemoteSettings

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "dg_lsp" / "models" / "default"


def test_each_family_renders_its_published_fim_template():
    rendered = {name: t.render("PRE", "SUF", "") for name, t in FAMILIES.items() if t.kind == "fim"}
    assert rendered == {
        "qwen": "<|fim_prefix|>PRE<|fim_suffix|>SUF<|fim_middle|>",
        "starcoder": "<fim_prefix>PRE<fim_suffix>SUF<fim_middle>",
        "codellama": "<PRE> PRE <SUF>SUF <MID>",
        "deepseek": "<｜fim▁begin｜>PRE<｜fim▁hole｜>SUF<｜fim▁end｜>",
    }
    assert "<|endoftext|>" in FAMILIES["qwen"].stops and "<EOT>" in FAMILIES["codellama"].stops
    # Snippets come first, before the prefix marker.
    assert FAMILIES["qwen"].render("p", "s", "# path: b.py\n").startswith("# path: b.py\n<|fim_prefix|>p")


def test_the_instruction_family_puts_the_prefix_at_the_start_of_the_reply():
    prompt = FAMILIES["diffusiongemma"].render("def f():\n    ", "\nprint(f())\n", "", selection="return 1")
    assert prompt.startswith("<|turn>user\n") and prompt.endswith("<turn|>\n<|turn>model\ndef f():\n    ")
    assert "print(f())" in prompt and "return 1" in prompt  # the suffix and a rewrite's old code
    assert "<turn|>" in FAMILIES["diffusiongemma"].stops


def test_a_tokenizer_directory_decides_markers_order_and_stops():
    template = from_tokenizer(DEFAULT_MODEL)
    assert template.markers == ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    assert template.order == "spm"  # the default model's dg_lsp.json
    assert template.render("P", "S", "") == "<|fim_prefix|><|fim_suffix|>S<|fim_middle|>P"
    assert "<eos>" in template.stops


def test_settings_that_cannot_work_are_refused_with_the_reason():
    with pytest.raises(ModelLoadError, match="family"):
        _template_and_tokenizer(RemoteSettings(url="http://x", kind="openai"))
    with pytest.raises(ModelLoadError, match="use dgLsp.remote.kind openai"):
        _template_and_tokenizer(RemoteSettings(url="http://x", kind="openai-suffix", family="diffusiongemma"))
    with pytest.raises(ModelLoadError, match="no tokenizer.json"):
        _template_and_tokenizer(RemoteSettings(url="http://x", tokenizer=str(DEFAULT_MODEL / "nowhere")))
    template, tokenizer = _template_and_tokenizer(RemoteSettings(url="http://x", kind="openai-suffix"))
    assert template is None and tokenizer is None  # the server lays out its own FIM tokens


def test_the_budget_is_enforced_before_sending_with_an_estimate():
    builder = TextPromptBuilder(FAMILIES["qwen"], budget_tokens=200)
    prefix = "".join(f"line_{i} = {i}\n" for i in range(400))
    suffix = "".join(f"after_{i}()\n" for i in range(400))
    context = "".join(f"# snippet {i}\n" for i in range(400))
    prompt = builder.build(prefix, suffix, context)
    rendered = FAMILIES["qwen"].render(prompt.prefix, prompt.suffix, prompt.context)
    assert len(prompt) <= 200 and len(rendered) <= 200 * (CHARS_PER_TOKEN + 1)
    # The end of the prefix (the cursor side) and the start of the suffix and snippets are kept, whole lines.
    assert prompt.prefix.endswith("line_399 = 399\n") and prompt.prefix.startswith("line_")
    assert prompt.suffix.startswith("after_0()\n") and prompt.suffix.endswith("\n")
    assert prompt.context.startswith("# snippet 0\n") and len(prompt.context) < len(context)
    short = builder.build("x = ", "\n", "")
    assert (short.prefix, short.suffix, short.context) == ("x = ", "\n", "")


def test_the_budget_counts_with_the_models_tokenizer_when_one_is_given():
    tokenizer = read_tokenizer(DEFAULT_MODEL)
    builder = TextPromptBuilder(from_tokenizer(DEFAULT_MODEL), budget_tokens=128, tokenizer=tokenizer)
    prefix = "".join(f"value_{i} = compute({i})\n" for i in range(300))
    prompt = builder.build(prefix, "", "")
    rendered = builder.template.render(prompt.prefix, prompt.suffix, prompt.context)
    assert len(tokenizer.encode(rendered, add_special_tokens=False).ids) <= 128
    assert prompt.prefix.endswith("value_299 = compute(299)\n") and not builder.estimated


def test_request_bodies_per_kind():
    prompt = TextPromptBuilder(FAMILIES["qwen"], 512).build("a = ", "\nb = 2\n", "# path: c.py\nc = 3\n")
    path, body = request_for("openai", prompt, FAMILIES["qwen"], model="qwen-coder", max_tokens=48, seed=0,
                             logprobs=True)
    assert path == "/v1/completions" and "suffix" not in body  # vLLM rejects suffix
    assert body["prompt"] == "# path: c.py\nc = 3\n<|fim_prefix|>a = <|fim_suffix|>\nb = 2\n<|fim_middle|>"
    assert body["max_tokens"] == 48 and body["temperature"] == 0 and body["stream"] is True
    assert body["logprobs"] == 1 and body["model"] == "qwen-coder" and "<|endoftext|>" in body["stop"]

    path, body = request_for("openai-suffix", prompt, None, model="", max_tokens=16, seed=None, logprobs=False)
    assert path == "/v1/completions" and body["prompt"] == "# path: c.py\nc = 3\na = "
    assert body["suffix"] == "\nb = 2\n" and "logprobs" not in body and "model" not in body and "stop" not in body

    path, body = request_for("llamacpp-infill", prompt, FAMILIES["qwen"], model="", max_tokens=16, seed=3,
                             logprobs=True)
    assert path == "/infill" and body["input_prefix"] == "a = " and body["input_suffix"] == "\nb = 2\n"
    assert body["input_extra"] == [{"filename": "", "text": "# path: c.py\nc = 3\n"}]
    assert body["n_predict"] == 16 and body["n_probs"] == 1 and body["seed"] == 3 and body["stream"] is True


def test_openai_chunks_accumulate_pieces_and_probabilities():
    choices: dict[int, Choice] = {}
    parse_event("openai", json.dumps({"choices": [{"index": 0, "text": "ret", "logprobs": {
        "tokens": ["re", "t"], "token_logprobs": [-0.01, math.log(0.5)]}}]}), choices)
    parse_event("openai", json.dumps({"choices": [{"index": 0, "text": "urn", "logprobs": None}]}), choices)
    assert choices[0].pieces == ["re", "t", "urn"] and choices[0].text == "return"
    assert choices[0].confidences[1] == pytest.approx(0.5) and choices[0].confidences[2] == 1.0
    # Tokens that don't spell the text (a character split across tokens): the chunk gets their joint probability.
    parse_event("openai", json.dumps({"choices": [{"index": 1, "text": "é", "logprobs": {
        "tokens": ["bytes:\\xc3", "bytes:\\xa9"], "token_logprobs": [-0.1, -2.0]}}]}), choices)
    assert choices[1].pieces == ["é"] and choices[1].confidences == [pytest.approx(math.exp(-2.1))]
    # llama.cpp's llama-server: chat-style logprobs on /v1/completions.
    parse_event("openai", json.dumps({"choices": [{"index": 2, "text": "ab", "logprobs": {"content": [
        {"id": 1, "token": "a", "logprob": math.log(0.9)}, {"id": 2, "token": "b", "logprob": 0.0}]}}]}), choices)
    assert choices[2].pieces == ["a", "b"] and choices[2].confidences == [pytest.approx(0.9), 1.0]


def test_infill_chunks_in_both_probability_formats():
    choices: dict[int, Choice] = {}
    parse_event("llamacpp-infill", json.dumps({"content": "x", "completion_probabilities": [
        {"token": "x", "logprob": math.log(0.25)}]}), choices)
    parse_event("llamacpp-infill", json.dumps({"content": "y", "completion_probabilities": [
        {"content": "y", "probs": [{"tok_str": "z", "prob": 0.6}, {"tok_str": "y", "prob": 0.3}]}]}), choices)
    assert choices[0].pieces == ["x", "y"] and choices[0].confidences == [pytest.approx(0.25), pytest.approx(0.3)]


@pytest.mark.parametrize("data, message", [
    ("{not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    ('{"object": "text_completion"}', "list of choices"),
    ('{"error": {"message": "context too long"}}', "context too long"),
])
def test_malformed_answers_are_named(data, message):
    with pytest.raises(MalformedAnswer, match=message):
        parse_event("openai", data, {})


def test_error_bodies_and_stop_strings():
    assert error_message(b'{"error": {"message": "Invalid API key"}}') == "Invalid API key"
    assert error_message(b'{"detail": "Not Found"}') == "Not Found"
    assert error_message(b"Bad Gateway") == "Bad Gateway"
    pieces, conf = cut_at_stops(["return", " 1<|endo", "ftext|>junk"], [0.9, 0.8, 0.7], ("<|endoftext|>",))
    assert pieces == ["return", " 1"] and conf == [0.9, 0.8]
    assert cut_at_stops(["a"], [1.0], ("<EOT>",)) == (["a"], [1.0])
