"""The graphed denoiser: eager off CUDA, static buffers and re-capture logic (with a fake
graph that re-runs the captured forward into the same output buffer), eager after a failed
capture; the real capture on a GPU."""

import pytest
import torch

from dg_lsp.engine.cuda_graph import GraphedDenoiser
from dg_lsp.engine.sampler import DenoiseSettings, generate
from dg_lsp.model.loader import load_model

SETTINGS = DenoiseSettings(canvas_length=16, max_new_tokens=32, max_denoising_steps=4,
                           stability_threshold=100, confidence_threshold=1e-9)


def fake_capture(forward):
    """What a CUDA graph does, in eager torch: replay recomputes from the static inputs into the
    static output."""
    out = forward()
    return (lambda: out.copy_(forward())), out


def _generate(model, seed=0):
    cache = model.new_cache()
    model.encode(torch.arange(3, 15)[None], cache)
    return generate(model, cache, SETTINGS, torch.Generator().manual_seed(seed)).tokens


@pytest.fixture(scope="module")
def model(dense_dir):
    return load_model(dense_dir, progress=False).model


def test_off_cuda_it_is_the_model(model):
    graphed = GraphedDenoiser(model)
    assert not graphed.enabled
    assert torch.equal(_generate(graphed), _generate(model))
    assert graphed.captures == 0 and graphed.config is model.config


def test_replays_give_the_eager_tokens_and_recapture_per_canvas(model):
    graphed = GraphedDenoiser(model, enabled=True, capture=fake_capture)
    assert torch.equal(_generate(graphed), _generate(model))
    # two canvases (the cache grows between them), each: step 1 (no self-conditioning, never
    # repeated) runs eagerly, step 2 runs eagerly and is captured, steps 3 and 4 replay
    assert graphed.captures == 2 and graphed.replays == 4


def test_a_failed_capture_stays_eager(model):
    def broken(forward):
        raise RuntimeError("operation not permitted when stream is capturing")

    graphed = GraphedDenoiser(model, enabled=True, capture=broken)
    assert torch.equal(_generate(graphed), _generate(model))
    assert graphed.captures == 0 and graphed.replays == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_replay_matches_eager(dense_dir):
    gpu = load_model(dense_dir, device="cuda", progress=False).model
    graphed = GraphedDenoiser(gpu)
    cache = gpu.new_cache()
    with torch.inference_mode():
        gpu.encode(torch.arange(3, 15, device="cuda")[None], cache)
        canvas = torch.randint(0, 500, (1, 16), device="cuda")
        cond = torch.randn(1, 16, gpu.config.vocab_size, device="cuda", dtype=torch.bfloat16)
        want = gpu.denoise(canvas, cache, cond)
        for _ in range(3):
            got = graphed.denoise(canvas, cache, cond)
    assert graphed.captures == 1 and graphed.replays == 2
    torch.testing.assert_close(got, want, atol=1e-2, rtol=1e-2)
