"""Invariants of the block-diffusion sampler, on a tiny random model."""

from collections import deque

import pytest
import torch

from dg_lsp.engine.sampler import (
    DenoiseSettings,
    _all_equal,
    denoise_canvas,
    entropy_bound_accept,
    generate,
    sample_tokens,
    temperature,
    token_entropy,
)
from dg_lsp.errors import Cancelled
from dg_lsp.model.loader import load_model


@pytest.fixture(scope="module")
def model(moe_dir):
    return load_model(moe_dir, with_tokenizer=False, progress=False).model


def encoded(model, length=10, seed=0):
    cache = model.new_cache()
    model.encode(torch.randint(0, 512, (1, length), generator=torch.Generator().manual_seed(seed)), cache)
    return cache


def test_entropy_bound_accepts_lowest_entropies_within_the_bound():
    entropy = torch.tensor([[0.2, 0.05, 0.3, 0.01]])
    # sorted 0.01, 0.05, 0.2, 0.3: sums of the smaller ones 0, 0.01, 0.06, 0.26 -> first three pass 0.1
    assert entropy_bound_accept(entropy, 0.1).tolist() == [[True, True, False, True]]
    # The lowest-entropy position is always accepted, however tight the bound.
    assert entropy_bound_accept(torch.tensor([[3.0, 2.0, 5.0]]), 1e-9).tolist() == [[False, True, False]]


def test_token_entropy_limits():
    assert token_entropy(torch.zeros(1, 8)).item() == pytest.approx(torch.log(torch.tensor(8.0)).item())
    assert token_entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)


def test_temperature_falls_linearly_from_t_max():
    s = DenoiseSettings(max_denoising_steps=4, t_max=0.8, t_min=0.4)
    assert [temperature(r, s) for r in (4, 3, 2, 1)] == pytest.approx([0.8, 0.7, 0.6, 0.5])


def test_stability_needs_every_remembered_canvas_equal():
    a, b = torch.tensor([[1, 2]]), torch.tensor([[1, 3]])
    assert not _all_equal(deque([a], maxlen=2), a, 2).item()  # not enough history yet
    assert _all_equal(deque([a, a], maxlen=2), a, 2).item()
    assert not _all_equal(deque([b, a], maxlen=2), a, 2).item()


def test_each_step_keeps_accepted_samples_and_renoises_the_rest(model):
    cache = encoded(model)
    settings = DenoiseSettings(canvas_length=32, max_denoising_steps=5)
    steps = []
    denoise_canvas(model, cache, settings, torch.Generator().manual_seed(0), on_step=steps.append)
    assert len(steps) == 5
    renoised = 0
    for step in steps:
        assert torch.equal(step.accepted, entropy_bound_accept(step.entropy, settings.entropy_bound))
        assert torch.equal(step.canvas[step.accepted], step.sampled[step.accepted])
        renoised += int((step.canvas[~step.accepted] != step.sampled[~step.accepted]).sum())
    assert renoised > 0  # rejected positions get fresh random tokens


def test_fixed_seed_is_deterministic_and_seeds_differ(model):
    settings = DenoiseSettings(canvas_length=16, max_denoising_steps=4)
    runs = [generate(model, encoded(model), settings, torch.Generator().manual_seed(s)).tokens for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("canvas", [16, 40, 256])
def test_canvas_length_is_per_request(model, canvas):
    result = generate(model, encoded(model), DenoiseSettings(canvas_length=canvas, max_denoising_steps=2))
    assert result.tokens.shape == (1, canvas) and result.nfe == 2


def test_prompt_is_never_changed_and_only_finished_canvases_are_encoded(model):
    cache = encoded(model, length=10)
    prompt = cache.token_ids.clone()
    result = generate(model, cache, DenoiseSettings(canvas_length=16, max_new_tokens=40, max_denoising_steps=2))
    assert result.tokens.shape == (1, 48) and result.steps == [2, 2, 2]
    assert cache.length == 10 + 32  # the last canvas is not encoded
    assert torch.equal(cache.token_ids[:, :10], prompt)
    assert torch.equal(cache.token_ids[:, 10:], result.tokens[:, :32])


def test_cancel_is_checked_between_steps(model):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        generate(model, encoded(model), DenoiseSettings(canvas_length=16, max_denoising_steps=10), cancel=cancel)
    assert len(calls) == 3


def test_bad_settings_are_rejected(model):
    with pytest.raises(ValueError, match="t_min"):
        generate(model, encoded(model), DenoiseSettings(t_min=0.9, t_max=0.5))


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_sampling_follows_the_distribution(method):
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2]]).expand(20_000, 4)
    draws = sample_tokens(probs, torch.Generator().manual_seed(0), method)
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert freq[1] == 0  # never a zero-probability token
    torch.testing.assert_close(freq, torch.tensor([0.5, 0.0, 0.3, 0.2]), atol=0.015, rtol=0)


def test_a_draft_canvas_and_prior_condition_the_first_step(model):
    cache = encoded(model)
    settings = DenoiseSettings(canvas_length=16, max_denoising_steps=3)
    draft = torch.randint(0, 512, (1, 16), generator=torch.Generator().manual_seed(1))
    prior = torch.randn(1, 16, 512, generator=torch.Generator().manual_seed(2))
    steps = []
    denoise_canvas(model, cache, settings, torch.Generator().manual_seed(0), initial_canvas=draft,
                   on_step=steps.append, initial_self_cond=prior)
    expected = model.denoise(draft, cache, prior) / temperature(3, settings)
    torch.testing.assert_close(steps[0].logits, expected)


def test_candidates_share_one_cached_prompt(model):
    cache = encoded(model)
    result = generate(model, cache, DenoiseSettings(canvas_length=16, max_denoising_steps=2),
                      torch.Generator().manual_seed(0), batch_size=3)
    assert result.tokens.shape == (1 * 3, 16) and cache.batch_size == 1
    assert len({tuple(row) for row in result.tokens.tolist()}) == 3


def test_on_a_cpu_a_steps_logits_stay_within_range_of_the_best_and_sample_the_same(model, monkeypatch):
    """The CPU clamp (`CPU_LOGIT_RANGE`) keeps exp() out of underflow and the probabilities out
    of denormals; it changes no token: those logits carry under e^-80 of probability either way."""
    import dg_lsp.engine.sampler as sampler

    settings = DenoiseSettings(canvas_length=16, max_denoising_steps=6, t_max=0.02, t_min=0.01)
    steps = []
    clamped = denoise_canvas(model, encoded(model), settings, torch.Generator().manual_seed(3), on_step=steps.append)
    spread = torch.stack([s.logits.amax(-1) - s.logits.amin(-1) for s in steps])
    assert float(spread.max()) <= sampler.CPU_LOGIT_RANGE + 1e-3
    range_ = sampler.CPU_LOGIT_RANGE
    monkeypatch.setattr(sampler, "CPU_LOGIT_RANGE", float("inf"))
    raw_steps = []
    raw = denoise_canvas(model, encoded(model), settings, torch.Generator().manual_seed(3), on_step=raw_steps.append)
    raw_spread = torch.stack([s.logits.amax(-1) - s.logits.amin(-1) for s in raw_steps])
    assert float(raw_spread.max()) > range_  # at this temperature the clamp had work to do
    assert torch.equal(clamped[0], raw[0]) and clamped[1] == raw[1]
    assert torch.allclose(clamped[2], raw[2], atol=1e-6)
