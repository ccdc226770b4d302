"""The Dream-family engine behind the server's `Engine` interface, on tiny random checkpoints
loaded by the real loader (`Engine.from_directory` picks the family from the directory)."""

from __future__ import annotations

import json

import pytest
import torch

from dg_lsp.engine.dream_engine import DreamEngine
from dg_lsp.engine.engine import Engine
from dg_lsp.errors import Cancelled, InputError, ModelLoadError

from .tiny_dream import BOS, MASK, PAD, build_tiny_dream, token_id

pytest.importorskip("transformers")

PREFIX = "def fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n"
SUFFIX = "    return a\n\n\nclass Stack:\n    pass\n"


@pytest.fixture(scope="module")
def dream_dir(tmp_path_factory):
    return build_tiny_dream(tmp_path_factory.mktemp("dream") / "m", variant="dream", seed=1)


@pytest.fixture(scope="module")
def engine(dream_dir):
    return Engine.from_directory(dream_dir, progress=False)


def test_the_directory_picks_the_dream_engine(engine, dream_dir):
    assert isinstance(engine, DreamEngine)
    assert str(dream_dir) in engine.identity and engine.context_tokens <= 2048
    assert not getattr(engine, "takes_drafts", False)  # the server seeds no prompt-lookup drafts


def test_prompts_are_in_place_with_the_snippets_before_the_prefix(engine, dream_dir):
    prompt = engine.prompts.build(PREFIX, SUFFIX, "# other.py\nX = 1\n", key="doc")
    ids = list(prompt.ids)
    assert ids[0] == token_id(dream_dir, BOS) and ids[-1] == token_id(dream_dir, PAD)
    order = [name for name, (a, b) in sorted(prompt.spans.items(), key=lambda kv: kv[1]) if b > a or name == "gap"]
    assert order == ["bos", "context", "prefix", "gap", "suffix", "eos"]
    assert engine.prompts.decode(prompt.segment("prefix")) == PREFIX
    assert engine.prompts.decode(prompt.segment("suffix")) == SUFFIX
    assert token_id(dream_dir, MASK) not in ids  # the engine inserts the gap when generating
    assert prompt.cache_key == "doc"


def test_the_budget_cuts_the_prefix_from_the_start(engine):
    old = engine.context_tokens
    try:
        engine.context_tokens = 64
        prompt = engine.prompts.build(PREFIX * 20, SUFFIX * 20)
        assert len(prompt) <= 64
        assert engine.prompts.decode(prompt.segment("prefix")).endswith(PREFIX[-20:])
    finally:
        engine.context_tokens = old


def test_generate_fills_the_gap(engine):
    prompt = engine.prompts.build(PREFIX, SUFFIX, key="a")
    generation = engine.generate(prompt, canvas_length=16, max_steps=4, seed=3)
    assert len(generation.rows) == 1 and len(generation.rows[0]) <= 16
    assert len(generation.confidences[0]) == len(generation.rows[0])
    assert all(0.0 < c <= 1.0 for c in generation.confidences[0])
    assert 1 <= generation.nfe <= 4 and generation.prompt_tokens == len(prompt)
    assert generation.timings_ms["total"] >= generation.timings_ms["denoise"] > 0
    again = engine.generate(prompt, canvas_length=16, max_steps=4, seed=3)
    assert again.rows == generation.rows


def test_candidates_are_rows_of_one_batch(engine):
    prompt = engine.prompts.build(PREFIX, SUFFIX)
    generation = engine.generate(prompt, canvas_length=16, max_steps=4, candidates=3, seed=0)
    assert len(generation.rows) == len(generation.confidences) == 3


def test_the_first_step_memo_serves_a_repeated_request(dream_dir):
    engine = Engine.from_directory(dream_dir, progress=False)
    prompt = engine.prompts.build(PREFIX, SUFFIX, key="doc")
    first = engine.generate(prompt, canvas_length=16, max_steps=4, seed=1)
    again = engine.generate(prompt, canvas_length=16, max_steps=4, seed=1)
    assert again.rows == first.rows
    assert first.encoded_tokens == 4 * len(prompt)  # every step ran the whole sequence
    assert again.encoded_tokens == 3 * len(prompt)  # its first step came from the memo
    assert len(engine.prompt_cache.entries) == 1 and engine.prompt_cache.tokens_encoded == 7 * len(prompt)
    unmemoized = DreamEngine.from_loaded(engine.loaded, first_step_memo=False)
    assert unmemoized.generate(prompt, canvas_length=16, max_steps=4, seed=1).rows == first.rows


def test_redraw_keeps_the_unmasked_share_of_the_draft(engine):
    prompt = engine.prompts.build("x = ", "\n")
    draft = engine.prompts.encode("compute(a, b) + offset * 2")
    for strength, most_changed in ((0.0, 1), (0.5, round(0.5 * len(draft)))):
        generation = engine.redraw(prompt, draft, strength=strength, seed=5)
        row = generation.rows[0]
        if len(row) == len(draft):  # (a stop token written into the gap cuts the row)
            assert sum(a != b for a, b in zip(row, draft)) <= most_changed
        assert len(row) <= len(draft)
    with pytest.raises(InputError):
        engine.redraw(prompt, draft, strength=1.5)


def test_text_in_text_out(engine):
    completion = engine.infill(PREFIX, SUFFIX, context="# helpers.py\n", key="t", canvas_length=16, max_steps=2)
    assert isinstance(completion.text, str) and completion.nfe <= 2
    rewritten = engine.rewrite(PREFIX, "        a, b = b, a + b\n", SUFFIX, max_steps=3, seed=2)
    assert isinstance(rewritten.text, str) and rewritten.nfe <= 3


def test_bad_requests_are_clear_errors(engine):
    prompt = engine.prompts.build(PREFIX, SUFFIX)
    with pytest.raises(InputError, match="gap"):
        engine.generate(prompt, canvas_length=1000)
    with pytest.raises(InputError, match="steps"):
        engine.generate(prompt, max_steps=0)
    with pytest.raises(InputError):
        engine.generate(prompt, candidates=0)
    with pytest.raises(Cancelled):
        engine.generate(prompt, canvas_length=16, cancel=lambda: True)
    assert engine.generate(prompt, canvas_length=16, max_steps=2).nfe >= 1  # still usable


def test_dreamon_decodes_a_gap_of_its_own_length(tmp_path):
    directory = build_tiny_dream(tmp_path / "dreamon", variant="dreamon", seed=2)
    engine = Engine.from_directory(directory, progress=False)
    assert engine.decoding.variable_length
    generation = engine.generate(engine.prompts.build(PREFIX, SUFFIX), canvas_length=16, max_steps=24,
                                 candidates=2, seed=0)
    assert len(generation.rows) == 2
    assert all(len(row) <= 16 + engine.decoding.max_grow for row in generation.rows)
    assert token_id(directory, MASK) not in sum(generation.rows, [])


def test_open_dcoder_through_its_override_and_quantized(tmp_path):
    directory = build_tiny_dream(tmp_path / "odc", variant="open_dcoder", seed=4)
    engine = Engine.from_directory(directory, progress=False, quantization="int8")
    assert isinstance(engine, DreamEngine) and engine.loaded.quantization == "int8"
    assert engine.prompts.format.bos_id == token_id(directory, PAD)  # Open-dCoder's bos is <|endoftext|>
    generation = engine.generate(engine.prompts.build(PREFIX, SUFFIX), canvas_length=16, max_steps=4, seed=0)
    assert generation.nfe >= 1 and len(generation.rows[0]) <= 16


def test_decoding_settings_from_the_directory(tmp_path):
    directory = build_tiny_dream(tmp_path / "d", variant="dream")
    (directory / "dg_lsp.json").write_text(json.dumps({"decoding": {"dual_cache": True, "block_length": 8,
                                                                    "threshold": None}}))
    engine = Engine.from_directory(directory, progress=False)
    assert engine.decoding.dual_cache and engine.decoding.block_length == 8 and engine.decoding.threshold is None
    assert engine.decoding.alg == "entropy" and engine.decoding.top_p == 0.95  # generation_config.json's
    generation = engine.generate(engine.prompts.build(PREFIX, SUFFIX), canvas_length=24, max_steps=6, seed=0)
    assert generation.nfe == 6 and generation.encoded_tokens == 3 * generation.prompt_tokens  # a pass per block
    (directory / "dg_lsp.json").write_text(json.dumps({"decoding": {"beam_width": 4}}))
    with pytest.raises(ModelLoadError, match="beam_width"):
        Engine.from_directory(directory, progress=False)
    (directory / "dg_lsp.json").write_text(json.dumps({"decoding": {"alg": "nope"}}))
    with pytest.raises(ModelLoadError, match="nope"):
        Engine.from_directory(directory, progress=False)


def test_the_diffusion_gemma_engine_is_unchanged(tmp_path):
    from ..tiny_models import build_checkpoint

    engine = Engine.from_directory(build_checkpoint(tmp_path / "dg", moe=False), progress=False)
    assert type(engine) is Engine
    assert torch.is_tensor(engine.model.embed_tokens.weight)


def test_keystroke_reuse_of_the_prompts_keys_is_a_setting(tmp_path):
    directory = build_tiny_dream(tmp_path / "d", variant="dream", seed=3)
    (directory / "dg_lsp.json").write_text(json.dumps({"decoding": {"reuse_prompt_kv": True}}))
    engine = Engine.from_directory(directory, progress=False)
    long_prefix = PREFIX * 3  # the shared start must be at least 32 tokens
    first = engine.generate(engine.prompts.build(long_prefix, SUFFIX, key="doc"), canvas_length=16, max_steps=4,
                            seed=0)
    typed = engine.prompts.build(long_prefix + "        b = a", SUFFIX, key="doc")
    second = engine.generate(typed, canvas_length=16, max_steps=4, seed=0)
    assert first.encoded_tokens == 4 * first.prompt_tokens
    # The first step ran only what follows the prefix the two prompts share.
    assert 3 * second.prompt_tokens < second.encoded_tokens < 4 * second.prompt_tokens
