"""The caches of Dream-family decoding against uncached decoding, on tiny random checkpoints.

Where a cache is exact (the dual cache refreshed every step; a window whose outside did not
change; the first step of a request that starts like the last one) the tokens must be equal.
Where it is an approximation (the dual cache kept for a whole block) the share of identical
tokens is measured and printed (`-s` shows it); the README and the benchmark quote it.
"""

from __future__ import annotations

import pytest
import torch

from dg_lsp.engine.dream_cache import FirstStepMemo, SpanForward
from dg_lsp.engine.dream_sampler import DreamDecoding, SpecialTokens, infill

from .test_decoding import load_dream, prompt_ids
from .tiny_dream import build_tiny_dream

pytest.importorskip("transformers")


@pytest.fixture(scope="module", params=["dream", "open_dcoder"])
def model(request, tmp_path_factory):
    directory = build_tiny_dream(tmp_path_factory.mktemp(request.param) / "m", variant=request.param, seed=5)
    return load_dream(directory)


def decode(model, prefix, suffix, k, settings, seed=0, **forward_options):
    cfg = model.config
    special = SpecialTokens(cfg.mask_token_id, cfg.eos_token_id, cfg.expand_token_id)
    forward = SpanForward(model, **forward_options)
    gap = torch.full((1, k), cfg.mask_token_id)
    return infill(forward, prefix, suffix, gap, settings, special, torch.Generator().manual_seed(seed)), forward


def agreement(model, settings, cached_options, prompts=6, k=16):
    same = total = 0
    for seed in range(prompts):
        prefix, suffix = prompt_ids(n_prefix=50 + 7 * seed, n_suffix=20 + seed, seed=seed)
        plain, _ = decode(model, prefix, suffix, k, settings, seed)
        cached, _ = decode(model, prefix, suffix, k, settings, seed, **cached_options)
        same += sum(a == b for a, b in zip(plain.tokens[0], cached.tokens[0]))
        total += k
    return same / total


def test_the_dual_cache_refreshed_every_step_is_exact(model):
    settings = DreamDecoding(steps=8, alg="entropy", temperature=0.0, top_p=None, block_length=8)
    assert agreement(model, settings, dict(dual_cache=True, refresh_every=1), k=24) == 1.0


def test_the_cached_window_pass_equals_the_whole_sequence_pass_when_nothing_changed(model):
    """The window attends to the kept prefix and suffix keys exactly as the whole pass does;
    only a change of the gap makes them stale (every layer after the first sees the gap)."""
    prefix, suffix = prompt_ids()
    ids = torch.tensor([prefix + [model.config.mask_token_id] * 12 + suffix])
    start, end = len(prefix), len(prefix) + 12
    forward = SpanForward(model, dual_cache=True)
    first = forward(ids, start, end)
    cached = forward(ids, start, end)
    assert forward.full_forwards == 1 and forward.last_nfe == 1
    torch.testing.assert_close(cached, first, rtol=1e-4, atol=1e-4)
    ids[0, start + 3] = 99
    stale = forward(ids, start, end)
    assert not torch.allclose(stale, model(ids)[:, start:end], rtol=1e-4, atol=1e-4)


def test_the_dual_cache_saves_whole_sequence_passes(model):
    prefix, suffix = prompt_ids()
    settings = DreamDecoding(steps=8, temperature=0.0, top_p=None, block_length=8)
    plain, plain_forward = decode(model, prefix, suffix, 24, settings)
    cached, cached_forward = decode(model, prefix, suffix, 24, settings, dual_cache=True)
    assert plain.nfe == cached.nfe == 8
    assert plain_forward.full_forwards == 8
    assert cached_forward.full_forwards == 3  # one per block


@pytest.mark.parametrize("block_length", [None, 8])
def test_the_dual_cache_per_block_agrees_with_uncached_decoding(model, block_length):
    """An approximation: measured, and it must at least keep most tokens on these models."""
    settings = DreamDecoding(steps=8, alg="entropy", temperature=0.0, top_p=None, block_length=block_length)
    share = agreement(model, settings, dict(dual_cache=True), k=16)
    print(f"\ndual cache, block {block_length or 'whole gap'}, {model.config.num_hidden_layers} layers: "
          f"{share:.1%} of tokens identical to uncached")
    assert share >= 0.5


def test_the_first_step_memo_is_exact_and_saves_a_forward(model):
    prefix, suffix = prompt_ids()
    memo = FirstStepMemo()
    settings = DreamDecoding(steps=6, temperature=0.7, top_p=0.95)
    reference, _ = decode(model, prefix, suffix, 12, settings, seed=4)
    first, _ = decode(model, prefix, suffix, 12, settings, seed=4, memo=memo, key="doc")
    again, _ = decode(model, prefix, suffix, 12, settings, seed=4, memo=memo, key="doc")
    assert first.tokens == again.tokens == reference.tokens
    assert first.nfe == 6 and again.nfe == 5 and memo.hits == 1
    other_prefix, _ = prompt_ids(seed=9)
    decode(model, other_prefix, suffix, 12, settings, memo=memo, key="doc")  # a different prompt: no hit
    assert memo.hits == 1


def test_reusing_the_last_prompts_keys_runs_only_what_changed(model):
    """The approximate keystroke reuse: typing three tokens at the end of the prefix reuses the
    keys of the shared start of the last prompt for the first step; the tokens are measured."""
    settings = DreamDecoding(steps=8, alg="entropy", temperature=0.0, top_p=None)
    same = total = 0
    for seed in range(4):
        prefix, suffix = prompt_ids(n_prefix=60, seed=seed)
        typed = prefix + [100 + seed, 200, 300]
        memo = FirstStepMemo()
        decode(model, prefix, suffix, 16, settings, memo=memo, key="doc", reuse_prompt_kv=True)
        reused, forward = decode(model, typed, suffix, 16, settings, memo=memo, key="doc", reuse_prompt_kv=True)
        exact, _ = decode(model, typed, suffix, 16, settings)
        assert forward.reused_positions == len(prefix)  # the whole old prefix, not the typed tokens
        assert reused.nfe == exact.nfe == 8
        same += sum(a == b for a, b in zip(reused.tokens[0], exact.tokens[0]))
        total += 16
    print(f"\nreuse of the last prompt's keys, {model.config.num_hidden_layers} layers: "
          f"{same / total:.1%} of tokens identical to uncached")
    assert same / total >= 0.5


def test_prompt_reuse_needs_a_shared_start(model):
    settings = DreamDecoding(steps=4, temperature=0.0, top_p=None)
    memo = FirstStepMemo()
    prefix, suffix = prompt_ids(n_prefix=60, seed=1)
    other, _ = prompt_ids(n_prefix=60, seed=2)
    decode(model, prefix, suffix, 8, settings, memo=memo, key="doc", reuse_prompt_kv=True)
    _, forward = decode(model, [1] + other[1:], suffix, 8, settings, memo=memo, key="doc", reuse_prompt_kv=True)
    assert forward.reused_positions == 0  # only the BOS in common
    _, forward = decode(model, prefix, suffix, 8, settings, memo=memo, key="other", reuse_prompt_kv=True)
    assert forward.reused_positions == 0  # another document's entry is not borrowed
