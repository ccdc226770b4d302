"""Our model and sampler against the HF transformers reference, on the same tiny checkpoints.

Prompts are longer than the sliding window (8), so sliding layers really slide.
"""

import pytest
import torch

from dg_lsp.engine.sampler import DenoiseSettings, generate
from dg_lsp.model.loader import load_model

transformers = pytest.importorskip("transformers")
from transformers import DiffusionGemmaForBlockDiffusion  # noqa: E402
from transformers.cache_utils import DynamicCache  # noqa: E402

ATOL = 1e-4  # float32; the observed differences are around 1e-5


def reference(model_dir, attn="eager"):
    return DiffusionGemmaForBlockDiffusion.from_pretrained(model_dir, attn_implementation=attn).eval()


def ours(model_dir):
    return load_model(model_dir, with_tokenizer=False, progress=False).model


def ref_cache(ref):
    return DynamicCache(config=ref.config.get_text_config(decoder=True))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_encoder_and_decoder_match_reference(model_dir, attn):
    ref, model = reference(model_dir, attn), ours(model_dir)
    torch.manual_seed(0)
    prompt = torch.randint(0, 512, (1, 21))
    canvas = torch.randint(0, 512, (1, 16))
    self_cond = torch.randn(1, 16, 512) * 3

    cache = ref_cache(ref)
    kv = model.new_cache()
    with torch.no_grad():
        ref_hidden = ref.model.encoder(input_ids=prompt, past_key_values=cache).last_hidden_state
    torch.testing.assert_close(model.encode(prompt, kv), ref_hidden, atol=ATOL, rtol=ATOL)

    for sc in (None, self_cond):
        with torch.no_grad():
            ref_logits = ref(decoder_input_ids=canvas, past_key_values=cache, self_conditioning_logits=sc).logits
        logits = model.denoise(canvas, kv, sc)
        assert logits.dtype == torch.float32 and logits.shape == (1, 16, 512)
        torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=ATOL)

    # Extending the prompt (as a finished canvas is) keeps both in step.
    more = torch.randint(0, 512, (1, 5))
    with torch.no_grad():
        ref_hidden = ref.model.encoder(input_ids=more, past_key_values=cache).last_hidden_state
        ref_logits = ref(decoder_input_ids=canvas, past_key_values=cache, self_conditioning_logits=self_cond).logits
    torch.testing.assert_close(model.encode(more, kv), ref_hidden, atol=ATOL, rtol=ATOL)
    torch.testing.assert_close(model.denoise(canvas, kv, self_cond), ref_logits, atol=ATOL, rtol=ATOL)


def test_decoder_does_not_write_the_cache(dense_dir):
    model = ours(dense_dir)
    kv = model.new_cache()
    model.encode(torch.randint(0, 512, (1, 12)), kv)
    before = [t.clone() for t in kv.read(0)]
    model.denoise(torch.randint(0, 512, (1, 16)), kv)
    assert kv.length == 12
    for a, b in zip(before, kv.read(0)):
        assert torch.equal(a, b)


def run_both(model_dir, seed, prompt, ref_kwargs, settings):
    """Generate with the reference and with ours from the same seed; count the reference's decoder passes."""
    ref, model = reference(model_dir), ours(model_dir)
    passes = []
    hook = ref.model.decoder.register_forward_pre_hook(lambda *_: passes.append(1))
    torch.manual_seed(seed)
    out = ref.generate(prompt, **ref_kwargs)
    hook.remove()
    kv = model.new_cache(batch_size=prompt.shape[0])
    model.encode(prompt, kv)
    result = generate(model, kv, settings, torch.Generator().manual_seed(seed))
    tokens = out.sequences[:, prompt.shape[1] :]
    return (tokens[0] if prompt.shape[0] == 1 else tokens), len(passes), result


@pytest.mark.parametrize("seed", [0, 1])
def test_generate_matches_reference_tokens_and_nfe(model_dir, seed):
    prompt = torch.randint(0, 512, (1, 19), generator=torch.Generator().manual_seed(seed))
    ref_kwargs = dict(max_new_tokens=48, max_denoising_steps=6, eos_token_id=None, pad_token_id=0)
    settings = DenoiseSettings(canvas_length=16, max_new_tokens=48, max_denoising_steps=6, sampling="reference")
    ref_tokens, ref_passes, result = run_both(model_dir, seed, prompt, ref_kwargs, settings)
    assert result.tokens.shape == (1, 48)  # three canvases, the first two encoded through the encoder
    assert torch.equal(result.tokens[0], ref_tokens)
    assert result.nfe == ref_passes == 18


@pytest.mark.parametrize("batch", [1, 2])
def test_adaptive_stop_matches_reference(moe_dir, batch):
    # Random weights never settle on a stable argmax, so stability is waived (threshold 0) and the
    # confidence threshold sits inside the falling mean entropy (~6.19 -> 5.35 nats over 20 steps).
    # In a batch, rows stop at different steps and a stopped row keeps its canvas.
    prompt = torch.randint(0, 512, (batch, 13), generator=torch.Generator().manual_seed(5))
    common = dict(max_denoising_steps=20, stability_threshold=0, confidence_threshold=6.12)
    ref_kwargs = dict(max_new_tokens=32, eos_token_id=None, pad_token_id=0, t_max=0.5, t_min=0.1, **common)
    settings = DenoiseSettings(canvas_length=16, max_new_tokens=32, t_max=0.5, t_min=0.1, sampling="reference",
                               **common)
    ref_tokens, ref_passes, result = run_both(moe_dir, 3, prompt, ref_kwargs, settings)
    assert torch.equal(result.tokens.squeeze(0), ref_tokens)
    assert result.nfe == ref_passes
    assert result.nfe < 40, "the adaptive stop never fired"


def test_eos_handling_matches_reference(dense_dir):
    prompt = torch.randint(0, 512, (1, 11), generator=torch.Generator().manual_seed(9))
    base = dict(max_new_tokens=48, max_denoising_steps=4, pad_token_id=0)
    ref_tokens, _, _ = run_both(dense_dir, 4, prompt, dict(eos_token_id=None, **base),
                                DenoiseSettings(canvas_length=16, max_new_tokens=48, max_denoising_steps=4,
                                                sampling="reference"))
    eos = int(ref_tokens[21])  # a token of the second canvas: generation must stop after that canvas
    first = int((ref_tokens == eos).nonzero()[0, 0])
    ref_tokens, ref_passes, result = run_both(
        dense_dir, 4, prompt, dict(eos_token_id=eos, **base),
        DenoiseSettings(canvas_length=16, max_new_tokens=48, max_denoising_steps=4, stop_token_ids=(eos,),
                        sampling="reference"),
    )
    assert torch.equal(result.tokens[0], ref_tokens)
    assert result.stopped and result.tokens.shape[1] == (first // 16 + 1) * 16
    assert (result.tokens[0, first + 1 :] == 0).all() and result.tokens[0, first] == eos
    assert result.nfe == ref_passes
