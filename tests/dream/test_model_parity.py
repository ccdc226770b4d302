"""Our Dream-family model against transformers' own Qwen2 run bidirectionally, plus the shift.

Tiny random checkpoints (GQA: 4 heads over 2 key/value heads, q/k/v biases and norms perturbed,
rope_theta 50000 so a hard-coded 10000 would show) loaded by our loader; the reference is
Qwen2ForCausalLM with the same weights, an all-zero 4-D float mask (every position visible) and the
published shift. The prompt (70 tokens) is longer than any window the cache path recomputes.
"""

import pytest
import torch

from dg_lsp.model.dream import kv_cat, kv_slice
from dg_lsp.model.loader import load_model

from .tiny_dream import build_tiny_dream, reference_logits, reference_model

pytest.importorskip("transformers")
LENGTH = 70
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module", params=["dream", "open_dcoder", "dreamon"])
def checkpoint(request, tmp_path_factory):
    return build_tiny_dream(tmp_path_factory.mktemp(request.param), variant=request.param, seed=3)


def _ids(batch=2, length=LENGTH, seed=0):
    return torch.randint(4, 512, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_logits_match_the_bidirectional_reference(checkpoint):
    ours = load_model(checkpoint, progress=False).model
    ids = _ids()
    with torch.inference_mode():
        got = ours(ids)
    want = reference_logits(reference_model(checkpoint), ids)
    assert got.dtype == torch.float32 and got.shape == (2, LENGTH, 512)
    torch.testing.assert_close(got, want, **TOL)


def test_the_reference_really_is_bidirectional_and_shifted(checkpoint):
    # Guards the parity test itself: a causal reference would pass a causal model.
    ref = reference_model(checkpoint)
    ids = _ids(batch=1)
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 512
    a, b = reference_logits(ref, ids), reference_logits(ref, changed)
    assert (a[0, 5] - b[0, 5]).abs().max() > 1e-4  # an early position sees the last token
    assert torch.equal(a[:, 0], a[:, 1])  # the shift: position 0 keeps its own prediction


def test_explicit_positions_match_the_reference(checkpoint):
    ours = load_model(checkpoint, progress=False).model
    ids = _ids(batch=1, length=20)
    positions = torch.arange(100, 120)[None]
    with torch.inference_mode():
        got = ours(ids, position_ids=positions)
    torch.testing.assert_close(got, reference_logits(reference_model(checkpoint), ids, positions), **TOL)


@pytest.mark.parametrize("start, end", [(1, 17), (30, 46), (54, 70)])
def test_cached_window_matches_the_full_forward(checkpoint, start, end):
    """Keys/values of the other positions from the full forward, only [start, end) recomputed:
    exact (no staleness), so within float32 tolerance of the full logits."""
    model = load_model(checkpoint, progress=False).model
    ids = _ids()
    positions = torch.arange(LENGTH)[None]
    with torch.inference_mode():
        full, kv = model(ids, return_kv=True)
        others = kv_cat(kv_slice(kv, 0, start), kv_slice(kv, end, LENGTH))
        window, window_kv = model(ids[:, start:end], position_ids=positions[:, start:end], kv=others, return_kv=True)
    # Window row 0 predicts from its own position (the shift within the window): rows 1.. are exact.
    torch.testing.assert_close(window[:, 1:], full[:, start + 1:end], **TOL)
    for (k, v), (full_k, full_v) in zip(window_kv, kv):
        torch.testing.assert_close(k, full_k[:, :, start:end], **TOL)
        torch.testing.assert_close(v, full_v[:, :, start:end], **TOL)


def test_returned_kv_shapes_and_batch_one_cache_broadcasts(checkpoint):
    model = load_model(checkpoint, progress=False).model
    cfg = model.config
    ids = _ids(batch=1)
    with torch.inference_mode():
        _, kv = model(ids, return_kv=True)
        assert len(kv) == cfg.num_hidden_layers
        assert kv[0][0].shape == (1, cfg.num_key_value_heads, LENGTH, cfg.head_dim)
        others = kv_cat(kv_slice(kv, 0, 20), kv_slice(kv, 30, LENGTH))
        windows = torch.stack([ids[0, 20:30], _ids(batch=1, length=10, seed=5)[0]])  # two candidates
        positions = torch.arange(20, 30)[None]
        batched = model(windows, position_ids=positions, kv=others)
        one_by_one = torch.cat([model(w[None], position_ids=positions, kv=others) for w in windows])
    torch.testing.assert_close(batched, one_by_one, **TOL)


def test_kv_needs_positions_and_every_layer(checkpoint):
    model = load_model(checkpoint, progress=False).model
    ids = _ids(batch=1, length=8)
    with torch.inference_mode():
        _, kv = model(ids, return_kv=True)
        with pytest.raises(ValueError, match="position_ids are required"):
            model(ids, kv=kv)
        with pytest.raises(ValueError, match="layers"):
            model(ids, position_ids=torch.arange(8)[None], kv=kv[:1])


def test_bfloat16_load_stays_close_to_float32(checkpoint):
    ids = _ids(batch=1)
    with torch.inference_mode():
        f32 = load_model(checkpoint, progress=False).model(ids)
        bf16_model = load_model(checkpoint, dtype=torch.bfloat16, progress=False).model
        assert bf16_model.embed_tokens.weight.dtype == torch.bfloat16
        bf16 = bf16_model(ids)
    assert bf16.dtype == torch.float32
    assert float((bf16 - f32).norm() / f32.norm()) < 0.05


@pytest.mark.parametrize("variant", ["dream", "open_dcoder"])
def test_mqa_and_a_head_size_other_than_hidden_over_heads(tmp_path, variant):
    # One key/value head, and head_dim 8 with hidden 64 over 4 heads (config.json must be read for it).
    directory = build_tiny_dream(tmp_path / "m", variant=variant, heads=4, kv_heads=1, head_dim=8, seed=1)
    assert load_model(directory, progress=False).model.layers[0].self_attn.q_proj.out_features == 32
    ours = load_model(directory, progress=False).model
    ids = _ids(batch=1, length=33)
    with torch.inference_mode():
        got = ours(ids)
    torch.testing.assert_close(got, reference_logits(reference_model(directory), ids), **TOL)


@pytest.mark.parametrize("start, end", [(0, 5), (1, 2), (40, 70)])
def test_logits_range_is_the_slice_of_the_full_logits(checkpoint, start, end):
    model = load_model(checkpoint, progress=False).model
    ids = _ids()
    with torch.inference_mode():
        full = model(ids)
        part, kv = model(ids, logits_range=(start, end), return_kv=True)
    assert part.shape == (2, end - start, 512) and len(kv) == model.config.num_hidden_layers
    torch.testing.assert_close(part, full[:, start:end], **TOL)  # a smaller matmul may round differently


def test_logits_range_outside_the_window():
    from dg_lsp.model.dream import DreamModel
    from dg_lsp.model.dream_config import parse_dream_config

    config = parse_dream_config({"model_type": "Dream", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
                                 "num_hidden_layers": 1, "num_attention_heads": 2, "mask_token_id": 3})
    model = DreamModel(config)
    with pytest.raises(ValueError, match="logits_range"):
        model(torch.zeros(1, 4, dtype=torch.long), logits_range=(2, 9))
