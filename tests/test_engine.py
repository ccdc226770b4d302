"""The engine end to end on a tiny random model: text in, completion out."""

import json
import shutil

import pytest

from dg_lsp.engine.engine import Engine
from dg_lsp.errors import InputError

PREFIX = "import os\n\n\ndef fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n        "
SUFFIX = "\n    return a\n\n\nclass Stack:\n    pass\n"


@pytest.fixture(scope="module")
def engine(dense_dir):
    return Engine.from_directory(dense_dir, progress=False)


@pytest.fixture(scope="module")
def spm_engine(tmp_path_factory, dense_dir):
    model = shutil.copytree(dense_dir, tmp_path_factory.mktemp("spm") / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"fim_order": "spm"}))
    return Engine.from_directory(model, progress=False)


def test_infill_returns_text_nfe_and_timings(engine):
    completion = engine.infill(PREFIX, SUFFIX, canvas_length=16, max_steps=4, seed=1)
    assert isinstance(completion.text, str)
    assert 1 <= completion.nfe <= 4 and completion.canvases == 1
    assert completion.prompt_tokens == completion.encoded_tokens > 10
    assert set(completion.timings_ms) >= {"encode", "denoise", "per_step", "total"}
    assert len(completion.token_ids) <= 16
    again = engine.infill(PREFIX, SUFFIX, canvas_length=16, max_steps=4, seed=1)
    assert again.text == completion.text and again.encoded_tokens == 0


def test_typing_at_the_cursor_encodes_a_handful_of_tokens_with_spm(spm_engine):
    spm_engine.infill(PREFIX, SUFFIX, canvas_length=16, max_steps=1, seed=0)
    for typed in ("a", "a,", "a, b"):
        completion = spm_engine.infill(PREFIX + typed, SUFFIX, canvas_length=16, max_steps=1, seed=0)
        assert completion.encoded_tokens <= 4, typed


def test_psm_re_encodes_the_suffix_when_the_prefix_changes(engine):
    engine.infill(PREFIX, SUFFIX, canvas_length=16, max_steps=1)
    completion = engine.infill(PREFIX + "a", SUFFIX, canvas_length=16, max_steps=1)
    assert completion.encoded_tokens > len(engine.prompts.encode(SUFFIX))


def test_huge_context_is_cut_to_the_budget(engine):
    huge = "x = 1\n" * 900_000  # about 5 MB
    completion = engine.infill(huge, huge, canvas_length=16, max_steps=1)
    assert completion.prompt_tokens <= engine.context_tokens


@pytest.mark.parametrize("kwargs", [dict(canvas_length=8), dict(canvas_length=300), dict(max_steps=0)])
def test_bad_request_settings(engine, kwargs):
    with pytest.raises(InputError):
        engine.infill(PREFIX, SUFFIX, **kwargs)


def test_candidates_are_denoised_in_one_batch(engine):
    completion = engine.infill(PREFIX, SUFFIX, canvas_length=16, max_steps=3, candidates=3, seed=2)
    assert len(completion.candidates) == 3 and completion.candidates[0] == completion.text
    assert completion.nfe <= 3  # one batch, not three runs
    with pytest.raises(InputError, match="single canvas"):
        engine.infill(PREFIX, SUFFIX, canvas_length=16, max_new_tokens=40, candidates=2)


def test_rewrite_runs_seeded_from_the_selection(engine):
    # A random model does not copy its input, so only the plumbing is checked here; the sampler
    # test checks that the draft and its prior reach the first denoising step.
    selection = "a, b = b, a + b"
    first = engine.rewrite(PREFIX, selection, SUFFIX, strength=0.3, max_steps=4, seed=0)
    again = engine.rewrite(PREFIX, selection, SUFFIX, strength=0.3, max_steps=4, seed=0)
    assert first.text == again.text and 1 <= first.nfe <= 4
    with pytest.raises(InputError, match="at most 255"):
        engine.rewrite(PREFIX, "x = 1\n" * 300, SUFFIX)
    with pytest.raises(InputError, match="strength"):
        engine.rewrite(PREFIX, selection, SUFFIX, strength=2.0)


def test_each_generated_token_has_its_confidence(engine):
    generation = engine.generate(engine.prompts.build(PREFIX, SUFFIX), canvas_length=16, max_steps=3, candidates=2,
                                 seed=4)
    assert len(generation.confidences) == len(generation.rows) == 2
    for row, confidence in zip(generation.rows, generation.confidences):
        assert len(confidence) == len(row)
        assert all(0.0 < c <= 1.0 for c in confidence)


def test_a_greedy_seed_starts_the_canvas_with_the_encoders_greedy_continuation(engine, monkeypatch):
    """`generate(greedy_seed=True)`: the first row's starting canvas is what greedy decoding through
    the causal encoder writes after the same prompt; a draft given wins over it."""
    import dg_lsp.engine.engine as engine_module
    from dg_lsp.engine.greedy import greedy_tokens
    from dg_lsp.prompt.healing import healed_text

    prompt = engine.prompts.build(PREFIX, SUFFIX)
    healed, healing = engine.healed(prompt)
    greedy, *_ = greedy_tokens(engine, list(healed.ids), 15, first_allowed=engine.first_token_mask(healing))
    started = []
    denoise = engine_module.generate
    monkeypatch.setattr(engine_module, "generate",
                        lambda *a, **k: started.append(k.get("initial_canvas")) or denoise(*a, **k))
    engine.generate(prompt, canvas_length=16, max_steps=2, seed=0, greedy_seed=True)
    assert started[-1] is not None and started[-1][0, : len(greedy)].tolist() == greedy
    engine.generate(prompt, canvas_length=16, max_steps=2, seed=0)
    assert started[-1] is None  # no seed asked for: the canvas starts from noise
    engine.generate(prompt, canvas_length=16, max_steps=2, seed=0, greedy_seed=True, draft="return a")
    assert started[-1][0, :2].tolist() == engine.prompts.encode(healed_text(healing) + "return a")[:2]

    # One line: the seed ends after its first line break (here: whatever token we call one).
    assert len(greedy) >= 4, "the tiny model's greedy line should not stop this early"
    monkeypatch.setattr(engine, "line_break_ids", frozenset({greedy[2]}))
    engine.generate(prompt, canvas_length=16, max_steps=2, seed=0, greedy_seed=True, one_line=True)
    canvas = started[-1][0].tolist()
    assert canvas[:3] == greedy[:3]
    prior_row = []
    monkeypatch.setattr(engine_module, "generate",
                        lambda *a, **k: prior_row.append(k["initial_self_cond"][0]) or denoise(*a, **k))
    engine.generate(prompt, canvas_length=16, max_steps=2, seed=0, greedy_seed=True, one_line=True)
    seeded = (prior_row[-1].abs().sum(dim=-1) > 0).tolist()  # the positions the prior favours a token at
    assert seeded[:3] == [True] * 3 and not any(seeded[3:])

    # A block: the seed ends after its BLOCK_SEED_LINES-th line break.
    monkeypatch.setattr(engine_module, "BLOCK_SEED_LINES", 2)
    breaks = frozenset({greedy[1], greedy[3]})
    monkeypatch.setattr(engine, "line_break_ids", breaks)
    second_break = [i for i, token in enumerate(greedy) if token in breaks][1]
    engine.generate(prompt, canvas_length=16, max_steps=2, seed=0, greedy_seed=True)
    seeded = (prior_row[-1].abs().sum(dim=-1) > 0).tolist()
    assert seeded == [True] * (second_break + 1) + [False] * (16 - second_break - 1)


def test_the_greedy_seed_continues_the_cached_prompt_without_encoding_it_again(engine):
    """The seed decodes from the prompt cache's entry: the prompt is encoded once, the entry
    holds exactly the prompt afterwards, and the tokens are those of a fresh cache's greedy decode."""
    from dg_lsp.engine.greedy import continue_greedily, greedy_tokens

    prompt = engine.prompts.build(PREFIX, SUFFIX, key="file:///seed.py")
    healed, healing = engine.healed(prompt)
    engine.prompt_cache.clear()
    before = engine.prompt_cache.tokens_encoded
    generation = engine.generate(prompt, canvas_length=16, max_steps=2, seed=0, greedy_seed=True)
    assert generation.encoded_tokens == len(healed) == engine.prompt_cache.tokens_encoded - before
    assert generation.timings_ms["seed"] > 0

    cache, encoded = engine.prompt_cache.prepare(healed.ids, key=healed.cache_key)
    assert encoded == 0 and cache.length == len(healed)
    mask = engine.first_token_mask(healing)
    tokens, probabilities = continue_greedily(engine.model, cache, healed.ids, 10, engine.defaults.stop_token_ids,
                                              first_allowed=mask)
    assert cache.length == len(healed) and cache.token_ids[0].tolist() == list(healed.ids)
    fresh, fresh_probabilities, _, _ = greedy_tokens(engine, list(healed.ids), 10, first_allowed=mask)
    assert tokens == fresh
    assert probabilities == pytest.approx(fresh_probabilities, abs=1e-4)