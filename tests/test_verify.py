"""The causal encoder's check of a denoised canvas (`dg_lsp.engine.verify`) on a tiny random model."""

import pytest
import torch

from dg_lsp.engine.engine import Engine
from dg_lsp.engine.verify import encoder_probabilities
from dg_lsp.errors import Cancelled
from dg_lsp.evaluation.autoregressive import greedy_tokens
from dg_lsp.server.confidence import confident_prefix

PREFIX = "import os\n\n\ndef fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n        "
SUFFIX = "\n    return a\n"


@pytest.fixture(scope="module")
def engine(dense_dir):
    return Engine.from_directory(dense_dir, progress=False)


def test_each_token_gets_the_probability_greedy_decoding_gave_it(engine):
    prompt = engine.prompts.build(PREFIX, SUFFIX, key="greedy")
    engine.defaults.stop_token_ids, stops = (), engine.defaults.stop_token_ids
    try:  # a random model may stop at once; without stops greedy writes all 6 tokens
        tokens, probabilities, _, _ = greedy_tokens(engine, list(prompt.ids), 6)
    finally:
        engine.defaults.stop_token_ids = stops
    cache, _ = engine.prompt_cache.prepare(prompt.ids, key="greedy")
    [verified] = encoder_probabilities(engine.model, cache, prompt.ids, [tokens])
    assert verified == pytest.approx(probabilities, rel=1e-4, abs=1e-7)
    # The cache holds exactly the prompt again, so the next request reuses all of it.
    assert cache.length == len(prompt.ids) and cache.token_ids[0].tolist() == list(prompt.ids)
    assert engine.prompt_cache.prepare(prompt.ids, key="greedy")[1] == 0


def test_an_unlikely_token_gets_a_low_probability(engine):
    prompt = engine.prompts.build(PREFIX, SUFFIX, key="unlikely")
    cache, _ = engine.prompt_cache.prepare(prompt.ids, key="unlikely")
    with torch.inference_mode():
        logits = engine.model.logits(engine.model.encode(torch.tensor([[prompt.ids[-1]]]), _copy(engine, cache)))[0, -1]
    likeliest, unlikeliest = int(logits.argmax()), int(logits.argmin())
    [[high], [low], []] = encoder_probabilities(engine.model, cache, prompt.ids, [[likeliest], [unlikeliest], []])
    assert high > low and high == pytest.approx(float(torch.softmax(logits, -1).max()), rel=1e-4)


def test_generate_reports_the_encoders_probabilities_and_the_denoisers_when_asked(engine):
    prompt = engine.prompts.build(PREFIX, SUFFIX, key="generate")
    verified = engine.generate(prompt, canvas_length=16, max_steps=2, seed=3, candidates=2)
    assert "verify" in verified.timings_ms
    # The engine heals the prompt's last token: what it encodes, and what the first token may be.
    healed, healing = engine.healed(prompt)
    assert healing is not None and verified.healed == healing.text
    cache, _ = engine.prompt_cache.prepare(healed.ids, key="generate")
    assert verified.confidences == [pytest.approx(p, rel=1e-4, abs=1e-7) for p in
                                    encoder_probabilities(engine.model, cache, healed.ids, verified.rows, None,
                                                          engine.first_token_mask(healing))]
    engine.verify_with_encoder = False
    try:
        denoised = engine.generate(prompt, canvas_length=16, max_steps=2, seed=3, candidates=2)
    finally:
        engine.verify_with_encoder = True
    assert denoised.rows == verified.rows  # verification changes the confidences, never the tokens
    assert denoised.confidences != verified.confidences


def test_verification_checks_for_cancellation(engine):
    prompt = engine.prompts.build(PREFIX, SUFFIX, key="cancel")
    cache, _ = engine.prompt_cache.prepare(prompt.ids, key="cancel")
    with pytest.raises(Cancelled):
        encoder_probabilities(engine.model, cache, prompt.ids, [[1, 2]], cancel=lambda: True)


def test_the_gate_keeps_the_prefix_whose_joint_probability_clears_the_threshold():
    # 0.9, 0.81, 0.729: each token is above 0.75, but the three together are not.
    assert confident_prefix([1, 2, 3], [0.9, 0.9, 0.9], 0.75) == [1, 2]
    assert confident_prefix([1, 2, 3], [0.9, 0.9, 0.9], 0.0) == [1, 2, 3]
    assert confident_prefix([1, 2], [0.5, 1.0], 0.6) == []


def _copy(engine, cache):
    """A scratch copy of the cache without its last position (to read the prompt's next-token logits)."""
    scratch = engine.model.new_cache(capacity=cache.length + 4)
    scratch.copy_prefix(cache, cache.length - 1)
    return scratch
