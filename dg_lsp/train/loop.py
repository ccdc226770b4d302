"""`dg-lsp train`: train the default model on a corpus, resumably, with progress.

    dg-lsp train --corpus /tmp/dg-corpus --tokenizer /tmp/dg-corpus/tokenizer.json \\
        --out runs/cpu --preset cpu --minutes 90 --export dg_lsp/models/default

A GPU run is the same command with `--preset gpu --device cuda` (and more steps).
Checkpoints are safetensors (model and optimizer state) plus a JSON file with the step,
the settings and the random state; `--out` resumes from them when they exist. A run can also
continue from an exported model directory and its progress state (`resume_from_export`,
what `dg_lsp.train.pipeline --resume-from` does): the weights are the export's bf16 ones and
the optimizer's moments start afresh, so the learning rate warms up again.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from tqdm import tqdm

from ..model.config import parse_config
from ..model.diffusion_gemma import DiffusionGemma
from ..prompt.decode import line_break_ids
from .corpus import iter_documents
from .data import FILE_SEPARATOR, FimSampler, TokenStream, WindowSampler, cap_package_bytes
from .export import export_model
from .line_holes import LineHoleCutter
from .objectives import losses, next_token_loss
from .presets import model_config
from .settings import TrainSettings


def init_weights(model: DiffusionGemma, std: float = 0.02) -> None:
    """Normal init for matrices and embeddings; norms and layer scalars stay at one."""
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            torch.nn.init.normal_(param, std=std)


def lr_at(step: int, settings: TrainSettings, train_seconds: float = 0.0, restart_step: int = 0) -> float:
    """Linear warmup, then a cosine down to a tenth over `steps`, or over `schedule_minutes` of
    training time when set (a run bounded by time cannot know its step count), or, with
    `constant_lr`, the rate itself (`decay_factor` anneals it at the end of a run). After a resume
    with fresh optimizer moments (`restart_step`), the rate warms up again."""
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    if settings.constant_lr:
        progress = 0.0
    elif settings.schedule_minutes:
        progress = train_seconds / (settings.schedule_minutes * 60)
    else:
        progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    lr = settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
    if restart_step and step - restart_step < settings.warmup:
        lr *= (step - restart_step + 1) / settings.warmup
    return lr


def decay_factor(seconds_left: float, decay_seconds: float | None) -> float:
    """The rate's multiplier `seconds_left` before the deadline: 1 until the last
    `decay_seconds`, then falling linearly to a tenth at the deadline."""
    if not decay_seconds or seconds_left >= decay_seconds:
        return 1.0
    return 0.1 + 0.9 * max(0.0, seconds_left) / decay_seconds


class Trainer:
    def __init__(self, corpus: Path, tokenizer_path: Path, out: Path, settings: TrainSettings):
        self.out, self.settings, self.tokenizer_path = Path(out), settings, Path(tokenizer_path)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(settings.seed)
        if settings.device.startswith("cuda"):
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 master weights, TF32 matmuls: much faster
            torch.backends.cudnn.allow_tf32 = True
        self.config = model_config(settings.preset, canvas_length=max(settings.canvas_lens))
        self.model = DiffusionGemma(parse_config(self.config)).to(settings.device)
        init_weights(self.model)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        rest = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": settings.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=settings.lr, betas=(0.9, 0.95))
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        newlines = line_break_ids(tokenizer)
        documents = list(iter_documents(Path(corpus) / "train.jsonl"))
        if settings.max_package_bytes:
            documents = cap_package_bytes(documents, settings.max_package_bytes, random.Random(settings.seed))
        documents = [d["text"] for d in documents]
        random.Random(settings.seed).shuffle(documents)  # the corpus file is grouped by source
        train = TokenStream.from_texts(documents, tokenizer, max_tokens=settings.max_train_tokens)
        del documents
        held = (d["text"] for d in iter_documents(Path(corpus) / "heldout.jsonl"))
        heldout = TokenStream.from_texts(held, tokenizer, max_tokens=500_000)
        self.train_batches = FimSampler(train, newlines, settings.prompt_len, settings.canvas_lens, settings.seed,
                                        line_holes=LineHoleCutter(tokenizer, FILE_SEPARATOR),
                                        line_hole_share=settings.line_hole_share)
        self.train_windows = WindowSampler(train, settings.prompt_len, settings.seed)
        self.eval_sampler = FimSampler(heldout, newlines, settings.prompt_len, settings.canvas_lens, seed=1234)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.step = 0
        self.train_seconds = 0.0  # across resumes: the history's clock and the time-based schedule
        self.restart_step = 0  # where the optimizer last started afresh (see lr_at)
        self.history: list[dict] = []
        self.train_tokens = len(train.ids)
        self._resume()

    # -- checkpoints ------------------------------------------------------------------------

    def _resume(self) -> None:
        meta_path = self.out / "checkpoint.json"
        if not meta_path.is_file():
            return
        meta = json.loads(meta_path.read_text())
        self.model.load_state_dict(load_file(self.out / "model.safetensors", device=self.settings.device))
        flat = load_file(self.out / "optimizer.safetensors", device=self.settings.device)
        state = self.optimizer.state_dict()
        for index, param_state in meta["optimizer_state_keys"].items():
            state["state"][int(index)] = {key: flat[f"{index}.{key}"] for key in param_state}
        self.optimizer.load_state_dict(state)
        self.restore_progress(meta)
        print(f"resumed from step {self.step}")

    def progress_state(self) -> dict:
        """Everything but the tensors that a resumed run needs: step, clock, history, random state."""
        return {"step": self.step, "train_seconds": self.train_seconds, "restart_step": self.restart_step,
                "history": self.history, "settings": asdict(self.settings), "config": self.config,
                "generator_state": self.generator.get_state().tolist(),
                "sampler_state": self.train_batches.rng.getstate(),
                "window_sampler_state": self.train_windows.rng.getstate()}

    def restore_progress(self, meta: dict) -> None:
        self.step, self.history = meta["step"], meta["history"]
        last_seconds = self.history[-1]["seconds"] if self.history else 0.0
        self.train_seconds = meta.get("train_seconds", last_seconds)
        self.restart_step = meta.get("restart_step", 0)
        self.generator.set_state(torch.tensor(meta["generator_state"], dtype=torch.uint8))
        self.train_batches.rng.setstate(_tuple_state(meta["sampler_state"]))
        if "window_sampler_state" in meta:
            self.train_windows.rng.setstate(_tuple_state(meta["window_sampler_state"]))

    def resume_from_export(self, model_dir: Path, meta: dict) -> None:
        """Continue from an exported (bf16) model directory and its `progress_state()`. The
        optimizer's moments are not in the export (they would triple its size), so they start
        afresh and the learning rate warms up again from here."""
        from ..model.loader import load_model

        loaded = load_model(model_dir, device="cpu", dtype=torch.float32, with_tokenizer=False, progress=False)
        self.model.load_state_dict(loaded.model.state_dict())
        self.restore_progress(meta)
        self.restart_step = self.step

    def continue_from_model(self, model_dir: Path) -> None:
        """Start a new run from a model directory's weights (the shipped default, say): its
        `training-log.json`, when present, carries the step count, clock and history on, so
        the card counts all the compute. Fresh optimizer moments, so the rate warms up again;
        the samplers are reseeded from that step so the data order does not repeat the first run's."""
        self.resume_from_export(model_dir, {"step": 0, "history": [],
                                            "generator_state": self.generator.get_state().tolist(),
                                            "sampler_state": self.train_batches.rng.getstate()})
        log_path = Path(model_dir) / "training-log.json"
        if log_path.is_file():
            earlier = json.loads(log_path.read_text())
            self.step, self.history = int(earlier.get("step", 0)), list(earlier.get("history", []))
            self.train_seconds = float(earlier.get("train_seconds", earlier.get("train_minutes", 0.0) * 60))
        self.restart_step = self.step
        self.train_batches.rng.seed(self.settings.seed + self.step)
        self.train_windows.rng.seed(self.settings.seed + self.step)
        self.generator.manual_seed(self.settings.seed + self.step)
        print(f"continuing from {model_dir} at step {self.step} ({self.train_seconds / 60:.0f} minutes of training)")

    def save(self) -> None:
        """A full checkpoint (fp32 weights and optimizer state) in `out`."""
        save_file({k: v.detach().contiguous() for k, v in self.model.state_dict().items()},
                  self.out / "model.safetensors")
        flat, keys = {}, {}
        for index, param_state in self.optimizer.state_dict()["state"].items():
            keys[str(index)] = list(param_state)
            for key, value in param_state.items():
                flat[f"{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
        save_file(flat, self.out / "optimizer.safetensors")
        meta = {**self.progress_state(), "optimizer_state_keys": keys}
        (self.out / "checkpoint.json").write_text(json.dumps(meta))

    # -- training ---------------------------------------------------------------------------

    def train(self, deadline: float | None = None, progress: bool = True,
              checkpoint: Callable[[], None] | None = None, log: Callable[[str], None] | None = None) -> None:
        """Train until `steps` or the deadline (a `time.monotonic()` value; default: `minutes`
        from now). `checkpoint` replaces `save` (called every `checkpoint_every` steps and at
        the end); without `progress` there is no bar and no per-step GPU sync for it."""
        s = self.settings
        if deadline is None and s.minutes:
            deadline = time.monotonic() + s.minutes * 60
        checkpoint = checkpoint or self.save
        log = log or (tqdm.write if progress else lambda line: print(line, flush=True))
        pretraining = s.objective == "next-token"
        batches = (self.train_windows if pretraining else self.train_batches).batches(s.batch_size)
        bar = tqdm(total=s.steps, initial=self.step, desc="training", unit="step", disable=not progress)
        self.model.train()
        while self.step < s.steps and (deadline is None or time.monotonic() < deadline):
            started = time.monotonic()
            batch = next(batches)
            lr = lr_at(self.step, s, self.train_seconds, self.restart_step)
            if deadline is not None and s.decay_minutes:
                lr *= decay_factor(deadline - started, s.decay_minutes * 60)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if pretraining:
                ar = next_token_loss(self.model, batch.to(s.device))
                diffusion = torch.zeros((), device=ar.device)
            else:
                ar, diffusion = self._losses(batch, self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            (ar + diffusion).backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.step += 1
            if progress:
                bar.update(1)
                bar.set_postfix(ar=f"{ar.item():.3f}", diffusion=f"{diffusion.item():.3f}")
            if self.step % s.eval_every == 0 or self.step == s.steps:
                self.history.append({"step": self.step, "objective": s.objective, "train_ar": ar.item(),
                                     "train_diffusion": diffusion.item(), **self.evaluate(),
                                     "seconds": self.train_seconds})
                log(json.dumps(self.history[-1]))
            self.train_seconds += time.monotonic() - started
            if self.step % s.checkpoint_every == 0:
                checkpoint()
        bar.close()
        checkpoint()

    def _losses(self, batch, generator: torch.Generator):
        """Both objectives on `batch`, shaped by the settings (training and evaluation alike)."""
        s = self.settings
        return losses(self.model, _to(batch, s.device), generator, ar_context=s.ar_context,
                      replaced_only=s.denoise_replaced_only)

    @torch.no_grad()
    def evaluate(self, batches: int = 4) -> dict[str, float]:
        self.model.eval()
        generator = torch.Generator().manual_seed(0)
        sums = [0.0, 0.0]
        sampler_state = self.eval_sampler.rng.getstate()
        stream = self.eval_sampler.batches(self.settings.batch_size)
        for _ in range(batches):
            ar, diffusion = self._losses(next(stream), generator)
            sums[0] += ar.item()
            sums[1] += diffusion.item()
        self.eval_sampler.rng.setstate(sampler_state)  # the same held-out batches every time
        self.model.train()
        return {"heldout_ar": sums[0] / batches, "heldout_diffusion": sums[1] / batches}

    def export(self, out_dir: Path) -> Path:
        # The training log travels with the model, so `--init-from` can carry its compute on.
        training_log = {"settings": asdict(self.settings), "history": self.history, "step": self.step,
                        "train_minutes": round(self.train_seconds / 60, 2), "train_seconds": self.train_seconds}
        extra = {"README.md": model_card(self), "training-log.json": json.dumps(training_log, indent=1)}
        return export_model(self.model, self.config, self.tokenizer_path, out_dir, extra_files=extra,
                            context_tokens=self.settings.prompt_len)


def model_card(trainer: Trainer) -> str:
    s = trainer.settings
    params = sum(p.numel() for p in trainer.model.parameters())
    last = trainer.history[-1] if trainer.history else {}
    return (
        "# dg-lsp default model\n\n"
        f"A {params / 1e6:.1f}M-parameter DiffusionGemma-architecture code model (preset `{s.preset}`), "
        "trained by `dg-lsp train` with the causal encoder's next-token loss and the canvas decoder's "
        "uniform-re-noising denoising loss (self-conditioned half the time) on fill-in-the-middle "
        "examples in SPM order.\n\n"
        f"- Training: {trainer.step} steps of {s.batch_size} examples "
        f"(prompt {s.prompt_len} tokens, canvases {list(s.canvas_lens)}), on `{s.device}`; "
        f"{trainer.train_seconds / 60:.0f} minutes.\n"
        f"- Corpus: {trainer.train_tokens / 1e6:.1f}M training tokens of the code on the build machine "
        "(see the corpus manifest); held out by package.\n"
        f"- Last held-out losses: next-token {last.get('heldout_ar', float('nan')):.3f}, "
        f"denoising {last.get('heldout_diffusion', float('nan')):.3f}.\n"
        "- Quality and speed: see `benchmarks/quality.py` and docs/default-model.md.\n"
    )


def _to(batch, device):
    return type(batch)(batch.prompt.to(device), batch.target.to(device))


def _tuple_state(state):
    """random.Random state from JSON (lists back to tuples)."""
    return tuple(tuple(x) if isinstance(x, list) else x for x in state)


def run(args: argparse.Namespace) -> int:
    settings = TrainSettings(preset=args.preset, steps=args.steps, minutes=args.minutes, batch_size=args.batch_size,
                             prompt_len=args.prompt_len, lr=args.lr, device=args.device,
                             max_train_tokens=args.max_train_tokens, schedule_minutes=args.schedule_minutes,
                             ar_context=args.ar_context, denoise_replaced_only=args.denoise_replaced_only,
                             objective=args.objective, max_package_bytes=args.max_package_bytes,
                             decay_minutes=args.decay_minutes, constant_lr=args.constant_lr,
                             line_hole_share=args.line_hole_share)
    random.seed(settings.seed)
    trainer = Trainer(args.corpus, args.tokenizer, args.out, settings)
    if args.init_from is not None and not trainer.step:  # a resumed run folder wins over --init-from
        trainer.continue_from_model(args.init_from)
    elif args.rewarm and trainer.step:
        trainer.restart_step = trainer.step  # new settings on old moments: no jump to the new rate
    trainer.train()
    if args.export:
        print(f"exported to {trainer.export(args.export)}")
    return 0
