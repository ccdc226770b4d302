"""Dream-family decoding (dg_lsp.engine.dream_sampler) on tiny random Dream checkpoints.

The checkpoints are real (tests/dream/tiny_dream.py, loaded by the real loader); the reference
for the deterministic mode is a plain loop over transformers' Qwen2ForCausalLM with every
position visible and the published shift. The DreamOn length rules are checked with a
scripted stand-in model (`ScriptedFakeModel`), since a random model almost never writes
[expand] or EOS where a test needs it.
"""

from __future__ import annotations

import pytest
import torch

from dg_lsp.engine.dream_cache import SpanForward
from dg_lsp.engine.dream_sampler import DreamDecoding, SpecialTokens, infill, top_p_filter
from dg_lsp.errors import Cancelled

from .tiny_dream import EXPAND, MASK, PAD, build_tiny_dream, reference_logits, reference_model, token_id

pytest.importorskip("transformers")


def load_dream(directory):
    from dg_lsp.model.loader import load_model

    loaded = load_model(directory, device="cpu", dtype=torch.float32, progress=False)
    assert loaded.family == "dream"
    return loaded.model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    directory = build_tiny_dream(tmp_path_factory.mktemp("dream") / "m", variant="dream", seed=3)
    return directory, load_dream(directory)


def special_of(model) -> SpecialTokens:
    cfg = model.config
    return SpecialTokens(cfg.mask_token_id, cfg.eos_token_id, cfg.expand_token_id)


def prompt_ids(n_prefix=40, n_suffix=30, seed=0, vocab=512, first=4):
    g = torch.Generator().manual_seed(seed)
    prefix = [1] + torch.randint(first, vocab, (n_prefix,), generator=g).tolist()  # 1: <|beginoftext|>
    suffix = torch.randint(first, vocab, (n_suffix,), generator=g).tolist() + [0]  # 0: <|endoftext|>
    return prefix, suffix


def run(model, prefix, suffix, k, settings, seed=0, batch=1, **forward_options):
    special = special_of(model)
    gap = torch.full((batch, k), special.mask)
    forward = SpanForward(model, **forward_options)
    generator = torch.Generator().manual_seed(seed)
    return infill(forward, prefix, suffix, gap, settings, special, generator)


def reference_greedy(ref, prefix, suffix, k, mask):
    """The deterministic mode, written plainly: each step, the most probable token of the most
    confident masked position (temperature 0, one token per step)."""
    ids = torch.tensor([prefix + [mask] * k + suffix])
    start = len(prefix)
    for _ in range(k):
        with torch.no_grad():
            probs = torch.softmax(reference_logits(ref, ids)[0, start : start + k].float(), dim=-1)
        probs[:, mask] = 0.0
        best_prob, best_token = probs.max(dim=-1)
        best_prob[ids[0, start : start + k] != mask] = -1.0
        position = int(best_prob.argmax())
        ids[0, start + position] = best_token[position]
    return ids[0, start : start + k].tolist()


def test_deterministic_mode_gives_the_reference_tokens(tiny):
    directory, model = tiny
    ref = reference_model(directory)
    settings = DreamDecoding(steps=12, alg="maskgit_plus", temperature=0.0, top_p=None)
    for seed in range(3):
        prefix, suffix = prompt_ids(n_prefix=60 + seed, seed=seed)
        result = run(model, prefix, suffix, 12, settings)
        assert result.tokens[0] == reference_greedy(ref, prefix, suffix, 12, model.config.mask_token_id)
        assert result.nfe == 12 and result.steps == 12


@pytest.mark.parametrize("alg", ["origin", "maskgit_plus", "confidence", "topk_margin", "entropy"])
def test_every_rule_fills_the_gap_within_the_budget(tiny, alg):
    _, model = tiny
    prefix, suffix = prompt_ids()
    mask = model.config.mask_token_id
    result = run(model, prefix, suffix, 16, DreamDecoding(steps=5, alg=alg, temperature=0.3, top_p=0.9), seed=1)
    assert len(result.tokens[0]) == 16 and mask not in result.tokens[0]
    assert result.nfe <= 5
    assert all(0.0 < c <= 1.0 for c in result.confidence[0])
    again = run(model, prefix, suffix, 16, DreamDecoding(steps=5, alg=alg, temperature=0.3, top_p=0.9), seed=1)
    assert again.tokens == result.tokens  # seeded


def test_the_confidence_is_the_committed_tokens_probability(tiny):
    _, model = tiny
    prefix, suffix = prompt_ids()
    # One step: every token is committed from the same forward, so its probability can be recomputed.
    result = run(model, prefix, suffix, 8, DreamDecoding(steps=1, alg="maskgit_plus", temperature=0.0, top_p=None))
    ids = torch.tensor([prefix + [model.config.mask_token_id] * 8 + suffix])
    logits = model(ids)[0, len(prefix) : len(prefix) + 8]
    logits[:, model.config.mask_token_id] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    expected = probs.gather(-1, torch.tensor(result.tokens[0])[:, None]).squeeze(-1)
    torch.testing.assert_close(torch.tensor(result.confidence[0]), expected)
    assert result.tokens[0] == probs.argmax(-1).tolist()


def test_different_seeds_draw_different_tokens_at_a_high_temperature(tiny):
    _, model = tiny
    prefix, suffix = prompt_ids()
    settings = DreamDecoding(steps=4, alg="entropy", temperature=1.5, top_p=None)
    rows = {tuple(run(model, prefix, suffix, 16, settings, seed=s).tokens[0]) for s in range(4)}
    assert len(rows) > 1


def test_candidates_are_decoded_as_one_batch(tiny):
    _, model = tiny
    prefix, suffix = prompt_ids()
    result = run(model, prefix, suffix, 16, DreamDecoding(steps=4, temperature=1.0), seed=2, batch=3)
    assert len(result.tokens) == 3 and all(len(row) == 16 for row in result.tokens)
    assert result.nfe <= 4  # the batch shares its forward passes
    assert len({tuple(row) for row in result.tokens}) > 1


def test_threshold_commits_every_confident_position_and_at_least_one(tiny):
    _, model = tiny
    prefix, suffix = prompt_ids()
    everything = run(model, prefix, suffix, 16, DreamDecoding(steps=16, temperature=0.0, threshold=1e-9))
    assert everything.nfe == 1  # every position passes a negligible threshold: one step
    one_each = run(model, prefix, suffix, 16, DreamDecoding(steps=16, temperature=0.0, threshold=1.0))
    assert one_each.nfe == 16  # nothing is certain: one per step, the least the rule commits
    middle = run(model, prefix, suffix, 16, DreamDecoding(steps=16, temperature=0.0, threshold=0.012))
    assert 1 <= middle.nfe <= 16


def test_blocks_are_decoded_left_to_right(tiny):
    _, model = tiny
    prefix, suffix = prompt_ids()
    seen = []

    class Recording(SpanForward):
        def __call__(self, ids, start, end):
            seen.append((start - len(prefix), end - len(prefix)))
            return super().__call__(ids, start, end)

    special = special_of(model)
    settings = DreamDecoding(steps=8, temperature=0.0, block_length=8)
    result = infill(Recording(model), prefix, suffix, torch.full((1, 24), special.mask), settings, special)
    assert special.mask not in result.tokens[0]
    assert [w for w in seen] == sorted(seen) and {w for w in seen} == {(0, 8), (8, 16), (16, 24)}
    assert result.nfe == 8  # the budget is shared by the blocks, at least one step each


def test_cancel_is_checked_before_every_step(tiny):
    _, model = tiny
    prefix, suffix = prompt_ids()
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    special = special_of(model)
    with pytest.raises(Cancelled):
        infill(SpanForward(model), prefix, suffix, torch.full((1, 8), special.mask),
               DreamDecoding(steps=8, temperature=0.0), special, cancel=cancel)
    assert len(calls) == 3


def test_bad_settings_are_refused():
    for bad in (dict(alg="beam"), dict(steps=0), dict(top_p=0.0), dict(threshold=1.5),
                dict(variable_length=True, block_length=8), dict(temperature=-1.0)):
        with pytest.raises(ValueError):
            DreamDecoding(**bad).validate()


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))[0].tolist()
    assert kept == [True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.1)).sum() == 1


@pytest.mark.parametrize("sharpness", [0.1, 3.0, 12.0])
def test_top_p_matches_the_published_sort_based_filter(sharpness):
    """Dream's `top_p_logits`, restated: sort, drop where the cumulative probability passes p,
    shifted by one so the crossing token stays."""
    logits = torch.randn(5, 3000, generator=torch.Generator().manual_seed(1)) * sharpness
    sorted_logits, order = torch.sort(logits, descending=True)
    drop = torch.softmax(sorted_logits, dim=-1).cumsum(-1) > 0.9
    drop[:, 1:] = drop[:, :-1].clone()
    drop[:, 0] = False
    expected = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    assert torch.equal(top_p_filter(logits, 0.9), expected)


# -- DreamOn's length rules, with a scripted stand-in -------------------------------------------


class ScriptedFakeModel(torch.nn.Module):
    """Test-only fake with DreamModel's forward signature: at each absolute position it prefers
    the token `script(position)` with the logit `strength(position)`, whatever the input."""

    def __init__(self, vocab, script, strength):
        super().__init__()
        self.vocab = vocab
        self.script = script
        self.strength = strength
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the fake a device

    def forward(self, input_ids, position_ids=None, kv=None, return_kv=False, logits_range=None):
        b, length = input_ids.shape
        positions = torch.arange(length)[None] if position_ids is None else position_ids
        logits = torch.zeros(b, length, self.vocab)
        for i, p in enumerate(positions[0].tolist()):
            logits[:, i, self.script(p)] = self.strength(p)
        if logits_range is not None:
            logits = logits[:, logits_range[0] : logits_range[1]]
        return (logits, []) if return_kv else logits


@pytest.fixture(scope="module")
def dreamon_ids(tmp_path_factory):
    directory = build_tiny_dream(tmp_path_factory.mktemp("dreamon") / "m", variant="dreamon")
    return SpecialTokens(token_id(directory, MASK), token_id(directory, PAD), token_id(directory, EXPAND))


def test_dreamon_expand_grows_the_gap_up_to_its_limit(dreamon_ids):
    special = dreamon_ids
    prefix, suffix = [1, 10, 11], [12, 0]
    # [expand] everywhere, with a second choice (token 7) once growth is blocked.
    class ExpandThenSeven(ScriptedFakeModel):
        def forward(self, input_ids, position_ids=None, kv=None, return_kv=False, logits_range=None):
            logits = super().forward(input_ids, position_ids, kv, False, logits_range)
            logits[..., 7] = 5.0
            return (logits, []) if return_kv else logits

    fake = ExpandThenSeven(64, lambda p: special.expand, lambda p: 10.0)
    settings = DreamDecoding(steps=40, alg="maskgit_plus", temperature=0.0, top_p=None, variable_length=True,
                             max_grow=3)
    result = infill(SpanForward(fake), prefix, suffix, torch.full((1, 4), special.mask), settings, special)
    assert result.tokens[0] == [7] * 7  # 4 masks, grown by 3, then filled with the second choice
    assert len(result.confidence[0]) == 7


def test_dreamon_eos_inside_the_gap_deletes_it_and_the_masks_after(dreamon_ids):
    special = dreamon_ids
    prefix, suffix = [1, 10, 11], [12, 0]
    start = len(prefix)
    # Positions start, start+1: token 20, very sure; later ones: EOS, less sure.
    fake = ScriptedFakeModel(64, lambda p: 20 if p < start + 2 else special.eos,
                             lambda p: 12.0 - p if p < start + 2 else 3.0 - 0.1 * p)
    settings = DreamDecoding(steps=10, alg="maskgit_plus", temperature=0.0, top_p=None, variable_length=True)
    result = infill(SpanForward(fake), prefix, suffix, torch.full((1, 6), special.mask), settings, special)
    assert result.tokens[0] == [20, 20] and result.lengths == [2]
    assert result.nfe == 3  # two tokens, then the EOS that ends the gap


def test_a_fixed_length_model_never_writes_expand(dreamon_ids):
    special = dreamon_ids
    fake = ScriptedFakeModel(64, lambda p: special.expand, lambda p: 10.0)
    settings = DreamDecoding(steps=4, alg="maskgit_plus", temperature=0.0, top_p=None)
    result = infill(SpanForward(fake), [1, 5], [6, 0], torch.full((1, 4), special.mask), settings, special)
    assert special.expand not in result.tokens[0] and len(result.tokens[0]) == 4
