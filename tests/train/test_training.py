"""The training loop end to end on a tiny preset: losses fall, checkpoints resume, and the
exported directory loads in dg-lsp's engine and in transformers' reference."""

import inspect
import json
import random
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dg_lsp.engine.engine import Engine
from dg_lsp.model.config import parse_config
from dg_lsp.model.diffusion_gemma import DiffusionGemma
from dg_lsp.model.loader import load_model
from dg_lsp.prompt.decode import line_break_ids
from dg_lsp.train.data import EOS, PAD, Batch, FimSampler, TokenStream, cap_package_bytes
from dg_lsp.train.loop import Trainer, decay_factor, init_weights, lr_at
from dg_lsp.train.objectives import losses
from dg_lsp.train.presets import model_config
from dg_lsp.train.settings import TrainSettings

from ..tiny_models import assert_decoder_matches_reference, build_tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    sources = [textwrap, inspect, random, json.decoder, json.encoder]
    docs = [{"path": m.__file__, "package": m.__name__, "language": "python", "text": Path(m.__file__).read_text()}
            for m in sources]
    (folder / "train.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[:4]))
    (folder / "heldout.jsonl").write_text(json.dumps(docs[4]) + "\n")
    build_tokenizer(folder / "tokenizer.json")
    return folder


def settings(**changes):
    base = dict(preset="test", steps=30, batch_size=4, prompt_len=48, canvas_lens=(16,), lr=3e-3, warmup=5,
                checkpoint_every=10, eval_every=10)
    return TrainSettings(**{**base, **changes})


def test_the_package_cap_keeps_small_packages_whole_and_trims_big_ones():
    big = [{"package": "big", "text": f"# file {i}\n" + "x = 1\n" * 100} for i in range(50)]
    small = [{"package": "small", "text": "y = 2\n"} for _ in range(3)]
    documents = big[:25] + small + big[25:]
    kept = cap_package_bytes(documents, max_bytes=2000, rng=random.Random(0))
    kept_big = [d for d in kept if d["package"] == "big"]
    assert [d for d in kept if d["package"] == "small"] == small
    assert 2000 <= sum(len(d["text"]) for d in kept_big) < 2000 + len(big[0]["text"])
    assert kept_big != big[: len(kept_big)]  # a random subset, not the first files
    assert [documents.index(d) for d in kept] == sorted(documents.index(d) for d in kept)  # corpus order
    # A package bigger than the cap in one file keeps that file.
    assert cap_package_bytes(big[:1], max_bytes=10, rng=random.Random(0)) == big[:1]
    with pytest.raises(ValueError):
        cap_package_bytes(documents, max_bytes=0, rng=random.Random(0))


def test_the_package_cap_option_takes_bytes_or_zero_for_no_cap():
    import argparse

    from dg_lsp.train.pipeline import parse_args
    from dg_lsp.train.settings import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    required = ["--corpus", "c", "--tokenizer", "t", "--out", "o"]
    assert parser.parse_args(required + ["--max-package-bytes", "2000000"]).max_package_bytes == 2_000_000
    assert parser.parse_args(required + ["--max-package-bytes", "0"]).max_package_bytes == 0  # falsy: no cap
    with pytest.raises(SystemExit):
        parser.parse_args(required + ["--max-package-bytes", "-1"])
    with pytest.raises(SystemExit):
        parse_args(["out", "--max-package-bytes", "-5"])
    # The pipeline's --constant-lr is None when not given, so a resumed run keeps its saved value.
    assert parse_args(["out"]).constant_lr is None and parse_args(["out", "--constant-lr"]).constant_lr is True
    from dg_lsp.train.pipeline import resolve_settings

    saved = {"settings": {**asdict(settings(constant_lr=True)), "canvas_lens": [16]}}
    assert resolve_settings(parse_args(["out"]), saved).constant_lr is True
    assert resolve_settings(parse_args(["out", "--constant-lr"]), None).constant_lr is True
    capped = {"settings": {**asdict(settings(max_package_bytes=2_000_000)), "canvas_lens": [16]}}
    assert resolve_settings(parse_args(["out"]), capped).max_package_bytes == 2_000_000
    assert not resolve_settings(parse_args(["out", "--max-package-bytes", "0"]), capped).max_package_bytes


def test_fim_examples_are_well_formed(corpus):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(corpus / "tokenizer.json"))
    stream = TokenStream.from_texts([Path(textwrap.__file__).read_text()], tokenizer)
    sampler = FimSampler(stream, line_break_ids(tokenizer), prompt_len=40, canvas_lens=(16,), seed=3)
    for _ in range(50):
        prompt, target = sampler.example(16)
        assert prompt.shape == (40,) and target.shape == (16,)
        specials = prompt[prompt != PAD][:3].tolist()
        assert specials == [2, 3, 4]  # <bos> <|fim_prefix|> <|fim_suffix|>: SPM order
        ids = target.tolist()
        if EOS in ids:  # the middle, then <eos>, then only padding
            end = ids.index(EOS)
            assert end >= 1 and all(t == PAD for t in ids[end + 1 :])
        assert (prompt == 5).sum() == 1  # one <|fim_middle|>


def test_training_resumes_and_exports_a_loadable_model(corpus, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(corpus, corpus / "tokenizer.json", run, settings(steps=20))
    trainer.train()
    first, last = trainer.history[0], trainer.history[-1]
    assert trainer.step == 20 and (run / "checkpoint.json").is_file()
    assert last["heldout_diffusion"] < 7.0 and last["train_ar"] < 8.0  # ln(8192) = 9.0 at the start

    resumed = Trainer(corpus, corpus / "tokenizer.json", run, settings(steps=30))
    assert resumed.step == 20 and resumed.history == trainer.history
    resumed.train()
    assert resumed.step == 30
    assert resumed.history[-1]["heldout_diffusion"] <= first["heldout_diffusion"]

    model_dir = resumed.export(tmp_path / "model")
    assert {p.name for p in model_dir.iterdir()} >= {"config.json", "generation_config.json", "model.safetensors",
                                                      "tokenizer.json", "dg_lsp.json", "README.md"}
    assert json.loads((model_dir / "dg_lsp.json").read_text()) == {"fim_order": "spm", "context_tokens": 48,
                                                                  "cross_file_context": False}
    loaded = load_model(model_dir, progress=False)
    reference_state = {k: v.to(torch.bfloat16).float() for k, v in resumed.model.state_dict().items()}
    for name, tensor in loaded.model.state_dict().items():
        torch.testing.assert_close(tensor, reference_state[name])
    completion = Engine(loaded).infill("def add(a, b):\n    return ", "\n", canvas_length=16, max_steps=2)
    assert isinstance(completion.text, str) and completion.nfe <= 2


def test_the_exported_model_loads_in_transformers(corpus, tmp_path):
    pytest.importorskip("transformers")
    trainer = Trainer(corpus, corpus / "tokenizer.json", tmp_path / "run", settings(steps=3))
    trainer.train()
    model_dir = trainer.export(tmp_path / "model")
    prompt = torch.randint(7, 512, (1, 30))
    canvas = torch.randint(7, 512, (1, 16))
    assert_decoder_matches_reference(model_dir, prompt, canvas, tol=1e-4)


def tiny_model(canvas_length: int) -> DiffusionGemma:
    """The `test` preset with larger random weights (distinct logits), seeded."""
    torch.manual_seed(0)
    model = DiffusionGemma(parse_config(model_config("test", canvas_length=canvas_length))).eval()
    init_weights(model, std=0.2)
    return model


def test_the_next_token_loss_covers_the_target_and_ar_context_prompt_tokens():
    """`ar_context` widens the next-token loss over the prompt's end: checked against the
    cross-entropy computed by hand from one encoder pass."""
    model = tiny_model(canvas_length=8)
    batch = Batch(torch.randint(7, 512, (2, 20)), torch.randint(7, 512, (2, 8)))
    sequence = torch.cat([batch.prompt, batch.target], dim=1)
    with torch.no_grad():
        logits = model.logits(model.encode(sequence, model.new_cache(batch_size=2, capacity=28)))
        for ar_context, first in ((0, 20), (5, 15), (100, 0)):
            expected = F.cross_entropy(logits[:, first:-1].transpose(1, 2), sequence[:, first + 1:])
            ar, _ = losses(model, batch, torch.Generator().manual_seed(0), ar_context=ar_context)
            torch.testing.assert_close(ar, expected, rtol=1e-5, atol=1e-5)


def test_the_replaced_only_denoising_loss_counts_re_noised_positions_only():
    """Replays the objective's random draws to compute the expected loss by hand."""
    model = tiny_model(canvas_length=16)
    batch = Batch(torch.randint(7, 512, (3, 20)), torch.randint(7, 512, (3, 16)))  # no padding in the target
    g = torch.Generator().manual_seed(3)
    noise_level = torch.rand(3, 1, generator=g)
    replace = torch.rand(batch.target.shape, generator=g) < noise_level
    noised = torch.where(replace, torch.randint(0, 8192, batch.target.shape, generator=g), batch.target)
    with torch.no_grad():
        cache = model.new_cache(batch_size=3, capacity=36)
        model.encode(batch.prompt, cache)
        per_token = F.cross_entropy(model.denoise(noised, cache).transpose(1, 2), batch.target, reduction="none")
        for replaced_only, weights in ((False, torch.ones_like(per_token)), (True, replace.float())):
            _, diffusion = losses(model, batch, torch.Generator().manual_seed(3), self_cond_share=0.0,
                                  replaced_only=replaced_only)
            torch.testing.assert_close(diffusion, (per_token * weights).sum() / weights.sum(), rtol=1e-5, atol=1e-5)
    assert 0 < replace.sum() < replace.numel()  # the two cases differ


def test_rewarm_restarts_the_warmup_at_the_resumed_step():
    s = settings(steps=1000, warmup=10, lr=1e-3)
    assert lr_at(500, s) > 4e-4  # mid-cosine
    assert lr_at(500, s, restart_step=500) == pytest.approx(lr_at(500, s) / 10)
    assert lr_at(510, s, restart_step=500) == pytest.approx(lr_at(510, s))


def test_a_constant_rate_then_a_linear_decay_to_a_tenth_at_the_deadline():
    s = settings(steps=1000, warmup=10, lr=1e-3, constant_lr=True)
    assert lr_at(5, s) == pytest.approx(6e-4)  # the warmup still comes first
    assert lr_at(20, s) == lr_at(900, s) == pytest.approx(1e-3)
    assert decay_factor(600.0, 300.0) == 1.0 and decay_factor(600.0, None) == 1.0
    assert decay_factor(150.0, 300.0) == pytest.approx(0.55)
    assert decay_factor(0.0, 300.0) == pytest.approx(0.1) == decay_factor(-5.0, 300.0)


def test_the_decay_anneals_a_run_bounded_by_time(corpus, tmp_path):
    trainer = Trainer(corpus, corpus / "tokenizer.json", tmp_path / "run",
                      settings(steps=10**6, warmup=2, constant_lr=True, decay_minutes=0.05, eval_every=10**6))
    trainer.train(deadline=time.monotonic() + 4.0, progress=False, checkpoint=lambda: None)
    assert trainer.step > 3
    assert trainer.optimizer.param_groups[0]["lr"] < 0.7 * 3e-3  # annealed over its last 3 seconds


def test_next_token_pretraining_then_fim_resumes_in_the_same_run(corpus, tmp_path):
    """Stage 1, plain next-token loss on contiguous windows, lowers the held-out next-token loss;
    stage 2 resumes the same run folder with the FIM objectives (both losses trained again)."""
    out = tmp_path / "run"
    first = Trainer(corpus, corpus / "tokenizer.json", out, settings(objective="next-token", steps=40))
    before = first.evaluate()["heldout_ar"]
    first.train(progress=False)
    stage1 = first.history[-1]
    assert stage1["objective"] == "next-token" and stage1["train_diffusion"] == 0.0
    assert stage1["heldout_ar"] < before - 0.5
    second = Trainer(corpus, corpus / "tokenizer.json", out, settings(objective="fim", steps=60))
    assert second.step == 40  # resumed
    second.train(progress=False)
    stage2 = second.history[-1]
    assert stage2["objective"] == "fim" and stage2["train_diffusion"] > 0
    assert stage2["heldout_diffusion"] < second.history[3]["heldout_diffusion"] + 1.0  # trained, not wrecked


def test_a_new_run_continues_from_an_exported_model(corpus, tmp_path):
    """`--init-from`: the new run starts from the export's weights, carries its step count,
    clock and history on (the card counts all the compute), and warms the rate up again."""
    first = Trainer(corpus, corpus / "tokenizer.json", tmp_path / "run-1", settings(steps=20))
    first.train(progress=False)
    model_dir = first.export(tmp_path / "model")
    log = json.loads((model_dir / "training-log.json").read_text())
    assert log["step"] == 20 and len(log["history"]) == 2

    second = Trainer(corpus, corpus / "tokenizer.json", tmp_path / "run-2", settings(steps=30))
    fresh_loss = second.evaluate()["heldout_diffusion"]
    second.continue_from_model(model_dir)
    assert second.step == 20 and second.restart_step == 20 and second.history == first.history
    assert second.train_seconds == pytest.approx(first.train_seconds, abs=0.01)
    continued_loss = second.evaluate()["heldout_diffusion"]
    assert continued_loss == pytest.approx(first.evaluate()["heldout_diffusion"], abs=0.05)  # bf16 round trip
    assert continued_loss < fresh_loss - 0.3
    second.train(progress=False)
    assert second.step == 30 and second.history[-1]["step"] == 30
