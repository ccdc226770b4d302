"""Training settings and their command-line flags (kept free of heavy imports, so building
the `dg-lsp` argument parser stays instant)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainSettings:
    preset: str = "cpu"
    steps: int = 20_000
    minutes: float | None = None  # stop after this much wall time (checkpoint and export first)
    schedule_minutes: float | None = None  # the LR cosine spans this much training time, not `steps`
    constant_lr: bool = False  # no cosine: `lr` after the warmup (with `decay_minutes`: warmup-stable-decay)
    # The last this-many minutes before `minutes` runs out, the rate falls linearly to a tenth
    # (a warmup-stable-decay schedule: a run resumed over sessions anneals when it stops).
    decay_minutes: float | None = None
    batch_size: int = 16
    prompt_len: int = 256
    canvas_lens: tuple[int, ...] = (16, 32, 64)
    # The next-token loss covers the target and this many of the last prompt tokens: the
    # vocabulary projection is the costliest part of a step on a CPU.
    ar_context: int = 64
    denoise_replaced_only: bool = False  # the denoising loss on re-noised positions only (objectives.py)
    # "fim": both objectives on FIM examples; "next-token": plain next-token pretraining on
    # contiguous windows of `prompt_len` tokens (a first stage: the weights are shared).
    objective: str = "fim"
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    max_train_tokens: int = 30_000_000
    # At most this many bytes of training text per package (a random subset of its files), so a
    # few huge packages do not make most of the mix (torch, transformers, sympy and scipy are 58%
    # of a machine's site-packages). None: every file.
    max_package_bytes: int | None = None
    # This share of FIM examples is one whole line cut from decoded text as the server cuts a
    # hole, the cursor at column 0 half the time (`line_holes`): token-boundary splits never end
    # a prompt in a bare line break, which is the server's prompt at an emptied line.
    line_hole_share: float = 0.0
    checkpoint_every: int = 200
    eval_every: int = 200
    seed: int = 0
    device: str = "cpu"


def package_bytes(text: str) -> int:
    """`--max-package-bytes`: a byte count, 0 for no cap (which also lifts a resumed run's cap)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no cap) or a number of bytes, not {value}")
    return value


def share(text: str) -> float:
    """`--line-hole-share`: a fraction between 0 and 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainSettings()
    parser.add_argument("--corpus", type=Path, required=True, help="folder with train.jsonl and heldout.jsonl")
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer.json")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints; resumed if present)")
    parser.add_argument("--preset", default=defaults.preset, choices=["test", "cpu", "gpu"])
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this much time")
    parser.add_argument("--schedule-minutes", type=float, default=None,
                        help="let the learning-rate cosine span this much training time instead of --steps")
    parser.add_argument("--constant-lr", action="store_true",
                        help="keep the rate at --lr after the warmup instead of a cosine (anneal with --decay-minutes)")
    parser.add_argument("--decay-minutes", type=float, default=None,
                        help="anneal: over the last this-many of --minutes the rate falls linearly to a tenth")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--prompt-len", type=int, default=defaults.prompt_len)
    parser.add_argument("--ar-context", type=int, default=defaults.ar_context,
                        help="prompt tokens (the last ones) the next-token loss covers besides the target")
    parser.add_argument("--objective", choices=["fim", "next-token"], default=defaults.objective,
                        help="fim: next-token and denoising losses on FIM examples; next-token: plain "
                             "pretraining on contiguous windows (a first stage; resume with fim after it)")
    parser.add_argument("--denoise-replaced-only", action="store_true",
                        help="count the denoising loss on re-noised positions only")
    parser.add_argument("--rewarm", action="store_true",
                        help="when resuming with changed settings: warm the learning rate up again from here")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="a model directory (the shipped default, say) whose weights a new run starts from")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--max-train-tokens", type=int, default=defaults.max_train_tokens)
    parser.add_argument("--max-package-bytes", type=package_bytes, default=None,
                        help="train on at most this many bytes per package (a random subset of its files; 0: no cap)")
    parser.add_argument("--line-hole-share", type=share, default=defaults.line_hole_share,
                        help="share of FIM examples that are one whole line cut as the server cuts a hole (default: 0)")
    parser.add_argument("--export", type=Path, default=None, help="write the model directory here at the end")
