"""Greedy decoding through the causal encoder, on a tiny random checkpoint."""

import dataclasses

import pytest
import torch

from dg_lsp.engine.engine import Engine
from dg_lsp.evaluation.autoregressive import decode_autoregressive, generate_autoregressive

PREFIX = "def fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n        "
SUFFIX = "\n    return a\n"


@pytest.fixture(scope="module")
def engine(dense_dir):
    return Engine.from_directory(dense_dir, progress=False)


@pytest.fixture
def no_stops(engine):
    """Random weights may emit a stop token at any time: take them away for exact lengths."""
    saved = engine.defaults
    engine.defaults = dataclasses.replace(saved, stop_token_ids=())
    yield engine
    engine.defaults = saved


def test_it_stops_at_max_new_tokens(no_stops):
    _, healing = no_stops.healed(no_stops.prompts.build(PREFIX, SUFFIX))
    for budget in (1, 5, 12):
        result = generate_autoregressive(no_stops, PREFIX, SUFFIX, budget)
        assert len(result.token_ids) == budget and not result.stopped
        assert result.text == no_stops.prompts.decode(result.token_ids, healing.text)


@pytest.mark.parametrize("heal", [True, False])
def test_tokens_are_the_greedy_choice_of_the_whole_sequence(no_stops, heal):
    """Decoding one token at a time with the KV cache gives the argmax that encoding the prompt
    and the generated tokens in one pass gives at every position; with token healing the prompt
    lacks its last token and the first token is the likeliest of those that extend it."""
    no_stops.heal_tokens = heal
    try:
        result = generate_autoregressive(no_stops, PREFIX, SUFFIX, 8)
    finally:
        no_stops.heal_tokens = True
    built = no_stops.prompts.build(PREFIX, SUFFIX)
    healed, healing = no_stops.healed(built)
    prompt = list(healed.ids if heal else built.ids)
    assert result.prompt_tokens == len(prompt) == len(built) - heal
    ids = torch.tensor([prompt + result.token_ids[:-1]])
    model = no_stops.model
    with torch.inference_mode():
        hidden = model.encode(ids, model.new_cache(capacity=ids.shape[1]))
        logits = model.logits(hidden)[0, len(prompt) - 1 :]
        if heal:
            logits[0] = logits[0].masked_fill(~no_stops.first_token_mask(healing), float("-inf"))
    assert logits.argmax(-1).tolist() == result.token_ids


def test_it_stops_at_a_stop_token_and_leaves_it_out(engine, no_stops):
    first = generate_autoregressive(no_stops, PREFIX, SUFFIX, 6).token_ids
    engine.defaults = dataclasses.replace(engine.defaults, stop_token_ids=(first[2],))
    result = generate_autoregressive(engine, PREFIX, SUFFIX, 6)
    cut = first.index(first[2])
    assert result.stopped and result.token_ids == first[:cut]


def test_the_protocol_returns_text_and_timings(engine):
    text, timings = decode_autoregressive(engine, PREFIX, SUFFIX, 4)
    assert isinstance(text, str)
    assert set(timings) == {"tokenize", "encode", "decode", "per_token", "total"}
    assert all(v >= 0 for v in timings.values()) and timings["total"] >= timings["decode"]
    with pytest.raises(ValueError):
        decode_autoregressive(engine, PREFIX, SUFFIX, 0)


def test_a_one_line_request_ends_after_its_first_line_break(no_stops, monkeypatch):
    """The baseline behind the engine interface stops where a left-to-right completer of one
    line would: after the first token holding a line break (here, whatever token we call one)."""
    from dg_lsp.evaluation.autoregressive import AutoregressiveEngine

    baseline = AutoregressiveEngine(no_stops)
    prompt = no_stops.prompts.build(PREFIX, SUFFIX)
    whole = baseline.generate(prompt, canvas_length=16).rows[0]
    assert len(whole) == 16
    monkeypatch.setattr(no_stops, "line_break_ids", frozenset({whole[3]}))
    cut = whole.index(whole[3]) + 1
    assert baseline.generate(prompt, canvas_length=16, one_line=True).rows[0] == whole[:cut]
    assert baseline.generate(prompt, canvas_length=16).rows[0] == whole  # more than one line: the whole budget


def test_the_line_breaks_are_the_tokens_whose_text_holds_one(engine):
    breaks = engine.line_break_ids
    newline = engine.prompts.encode("\n")
    assert set(newline) <= breaks
    assert all("\n" in engine.loaded.tokenizer.decode([i]) for i in breaks)
    assert not set(engine.prompts.encode("return value")) & breaks
