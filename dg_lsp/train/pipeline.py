"""One command from a bare machine to a trained, exported model, within a time budget:

    python -m dg_lsp.train.pipeline OUT_DIR --preset gpu --device cuda --minutes 60

1. the corpus of the machine's own sources (stdlib, site-packages, npm when present), in
   `--work-dir` (never in OUT_DIR: hundreds of MB that are not part of the model);
2. the BPE tokenizer on it, or, resuming, the previous run's (the embeddings depend on it);
3. training until the budget, less a reserve for the export (and the quick check);
4. every `--save-minutes` and at the end, the checkpoint: `OUT_DIR/model/`, the model in the
   Hugging Face layout (bf16, shards of at most `--shard-mb`; README.md, training-log.json and
   corpus-manifest.json beside it), and `OUT_DIR/run-state.json`, the progress (step, clock,
   history, random state) that `--resume-from OUT_DIR` continues from;
5. with `--eval-samples N`, a quick HumanEval-Infilling single-line check ->
   `OUT_DIR/quality.json`.

Why the checkpoint is the export: OUT_DIR stays small and is a usable model at every save.
Full training state (fp32 weights and the optimizer's two moments, 12 bytes a parameter)
would be ~260 MB for the `gpu` preset; the bf16 export is 44 MB. So a resumed run starts
from the bf16 weights with fresh optimizer moments and a short learning-rate warmup
(`Trainer.resume_from_export`); everything else (step, schedule clock, sampler and noise
random state) continues exactly. With `--bundle` the model's small files are packed into
`model/bundle.json` (`dg_lsp.train.bundle`), so OUT_DIR holds a handful of files (the
shards, the bundle, run-state.json, quality.json and pipeline.log), easy to copy between
machines.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # the budget counts from here, before the heavy imports

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from .bundle import BUNDLE, pack_directory, unpack_tree  # noqa: E402
from .corpus import SOURCES, build_corpus  # noqa: E402
from .export import export_model  # noqa: E402
from .loop import Trainer, model_card  # noqa: E402
from .presets import PRESETS, VOCAB_SIZE  # noqa: E402
from .settings import TrainSettings, package_bytes, share  # noqa: E402
from .tokenizer import sample_texts, train_tokenizer  # noqa: E402

STATE = "run-state.json"
WORK_ITEMS = ("corpus", "train", "resume-model", "check-model")  # folders the pipeline makes in --work-dir
# Per preset when not given: batch size, prompt length, prompt tokens under the next-token
# loss (all of them on a GPU; on a CPU the vocabulary projection makes them dear).
SHAPES = {"gpu": (64, 512, 512), "cpu": (8, 256, 128), "test": (4, 48, 16)}
SIZE_LIMIT_BYTES = 46_000_000  # the shipped directory's budget (48 MB, with a margin)


class Log:
    """Progress lines with the time since start, on stdout and in OUT_DIR/pipeline.log."""

    def __init__(self, path: Path, zero: float):
        self.path, self.zero = path, zero

    def __call__(self, message: str) -> None:
        line = f"[pipeline {time.monotonic() - self.zero:7.1f} s] {message}"
        print(line, flush=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class RunWriter:
    """Writes the checkpoint (model directory and run state) into OUT_DIR, replacing the last."""

    def __init__(self, out_dir: Path, manifest_path: Path, shard_bytes: int, bundle: bool, runs: list[dict],
                 log: Log):
        self.out_dir, self.manifest_path, self.shard_bytes = out_dir, manifest_path, shard_bytes
        self.bundle, self.runs, self.log = bundle, runs, log
        self.last_save = time.monotonic()
        self.saved_step: int | None = None

    def maybe_save(self, trainer: Trainer, every_s: float) -> None:
        if time.monotonic() - self.last_save >= every_s:
            self.save(trainer)

    def save(self, trainer: Trainer) -> Path:
        final = self.out_dir / "model"
        if self.saved_step == trainer.step and final.is_dir():
            return final
        started = time.monotonic()
        self.runs[-1].update(end_step=trainer.step, train_minutes=round(trainer.train_seconds / 60, 2))
        training_log = {"settings": asdict(trainer.settings), "history": trainer.history, "step": trainer.step,
                        "train_minutes": round(trainer.train_seconds / 60, 2), "runs": self.runs}
        extra = {"README.md": model_card(trainer), "training-log.json": json.dumps(training_log, indent=1),
                 "corpus-manifest.json": self.manifest_path.read_text(encoding="utf-8")}
        # Written beside, then swapped in: a command killed mid-write keeps the last checkpoint.
        partial, final, old = (self.out_dir / name for name in ("model.partial", "model", "model.old"))
        shutil.rmtree(partial, ignore_errors=True)
        export_model(trainer.model, trainer.config, trainer.tokenizer_path, partial, extra_files=extra,
                     max_shard_bytes=self.shard_bytes, context_tokens=trainer.settings.prompt_len)
        size = sum(p.stat().st_size for p in partial.iterdir())
        if size > SIZE_LIMIT_BYTES:
            self.log(f"warning: the model directory is {size / 1e6:.1f} MB, over the shipped model's "
                     f"{SIZE_LIMIT_BYTES / 1e6:.0f} MB budget")
        if self.bundle:
            pack_directory(partial)
        if final.exists():
            final.rename(old)
        partial.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        state = {**trainer.progress_state(), "runs": self.runs}
        tmp = self.out_dir / f"{STATE}.tmp"
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(self.out_dir / STATE)
        self.last_save, self.saved_step = time.monotonic(), trainer.step
        self.log(f"saved step {trainer.step} -> {final} ({size / 1e6:.2f} MB, {len(list(final.iterdir()))} files, "
                 f"{self.last_save - started:.1f} s)")
        return final


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dg_lsp.train.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="where model/, run-state.json, quality.json and pipeline.log go")
    parser.add_argument("--preset", default=None, choices=list(PRESETS), help="model size (default gpu)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--minutes", type=float, default=9.0,
                        help="wall-clock budget of the whole command, export and check included (default 9)")
    parser.add_argument("--steps", type=int, default=None, help="stop at this step (default: only the time)")
    parser.add_argument("--schedule-minutes", type=float, default=None,
                        help="training minutes the learning-rate cosine spans, over all resumed runs "
                             "(default: this run's training time)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--prompt-len", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--ar-context", type=int, default=None,
                        help="prompt tokens (the last ones) under the next-token loss besides the target")
    parser.add_argument("--denoise-replaced-only", action="store_true", default=None,
                        help="count the denoising loss on re-noised positions only")
    parser.add_argument("--eval-every", type=int, default=None, help="held-out losses every N steps (default 200)")
    parser.add_argument("--max-train-tokens", type=int, default=None, help="training stream size (default 40M)")
    parser.add_argument("--decay-minutes", type=float, default=None,
                        help="anneal: over the last this-many minutes the rate falls linearly to a tenth")
    parser.add_argument("--max-package-bytes", type=package_bytes, default=None,
                        help="train on at most this many bytes per package (a random subset of its files; 0: no cap)")
    parser.add_argument("--constant-lr", action="store_true", default=None,
                        help="keep the rate at --lr after the warmup instead of a cosine (anneal with --decay-minutes)")
    parser.add_argument("--line-hole-share", type=share, default=None,
                        help="share of FIM examples that are one whole line cut as the server cuts a hole")
    parser.add_argument("--shard-mb", type=float, default=15.0, help="largest weight file in MiB (default 15)")
    parser.add_argument("--bundle", action="store_true",
                        help="pack the model's small files into model/bundle.json (fewer files to copy)")
    parser.add_argument("--save-minutes", type=float, default=2.0, help="checkpoint this often (default 2)")
    parser.add_argument("--resume-from", type=Path, default=None, help="a previous OUT_DIR (bundled or not)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/dg-lsp-pipeline"),
                        help="corpus, tokenizer and scratch (default /tmp/dg-lsp-pipeline)")
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--root", action="append", default=[], metavar="SOURCE=DIR",
                        help="look for SOURCE in DIR instead of on this machine (repeatable)")
    parser.add_argument("--heldout-fraction", type=float, default=0.05)
    parser.add_argument("--tokenizer-bytes", type=int, default=64_000_000, help="tokenizer training sample")
    parser.add_argument("--eval-samples", type=int, default=0, help="quick HumanEval single-line check (0: none)")
    parser.add_argument("--humaneval-dir", type=Path, default=None, help="HumanEval-Infilling data folder")
    args = parser.parse_args(argv)
    for item in args.root:
        source, sep, directory = item.partition("=")
        if not sep or source not in SOURCES or not directory:
            parser.error(f"--root takes SOURCE=DIR with SOURCE one of {', '.join(SOURCES)}, not {item!r}")
    return args


def resolve_settings(args: argparse.Namespace, state: dict | None) -> TrainSettings:
    """A resumed run keeps the first run's settings; options given now override them."""
    if state is not None:
        saved = dict(state["settings"], canvas_lens=tuple(state["settings"]["canvas_lens"]))
        if args.preset and args.preset != saved["preset"]:
            raise SystemExit(f"--preset {args.preset} differs from the resumed run's {saved['preset']}")
        settings = TrainSettings(**saved)
    else:
        preset = args.preset or "gpu"
        batch, prompt, ar_context = SHAPES[preset]
        settings = TrainSettings(preset=preset, steps=10**9, batch_size=batch, prompt_len=prompt,
                                 ar_context=ar_context, max_train_tokens=40_000_000, checkpoint_every=20)
    explicit = {"steps": args.steps, "batch_size": args.batch_size, "prompt_len": args.prompt_len, "lr": args.lr,
                "ar_context": args.ar_context, "denoise_replaced_only": args.denoise_replaced_only,
                "eval_every": args.eval_every, "max_train_tokens": args.max_train_tokens,
                "schedule_minutes": args.schedule_minutes, "max_package_bytes": args.max_package_bytes,
                "decay_minutes": args.decay_minutes, "constant_lr": args.constant_lr,
                "line_hole_share": args.line_hole_share}
    for name, value in explicit.items():
        if value is not None:
            setattr(settings, name, value)
    settings.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    settings.minutes = None  # the pipeline gives the trainer its deadline
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    budget_s = args.minutes * 60
    zero = STARTED if argv is None else time.monotonic()  # in-process callers: from now
    end = zero + budget_s
    export_reserve = min(30.0, 0.1 * budget_s)
    check_reserve = min(90.0, 0.25 * budget_s) if args.eval_samples else 0.0  # engine start-up, sandbox
    out_dir, work = args.out_dir, args.work_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "pipeline.log").unlink(missing_ok=True)
    log = Log(out_dir / "pipeline.log", zero)

    state = json.loads((args.resume_from / STATE).read_text()) if args.resume_from else None
    settings = resolve_settings(args, state)
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but this machine has no CUDA GPU")
    gpu = torch.cuda.get_device_name() if settings.device.startswith("cuda") else platform.processor() or "cpu"
    log(f"torch {torch.__version__} on {settings.device} ({gpu}); budget {args.minutes} min; preset {settings.preset}")

    for name in WORK_ITEMS:  # nothing stale (a fresh machine has nothing either); only what we own
        shutil.rmtree(work / name, ignore_errors=True)
    (work / "tokenizer.json").unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    roots: dict[str, list[str]] = {}
    for item in args.root:
        source, _, directory = item.partition("=")
        roots.setdefault(source, []).append(directory)
    manifest = build_corpus(work / "corpus", args.sources, heldout_fraction=args.heldout_fraction, progress=False,
                            roots=roots or None, command="python -m dg_lsp.train.pipeline")
    totals = manifest.totals
    log(f"corpus: {totals['train']['files']} train files ({totals['train']['bytes'] / 1e6:.1f} MB), "
        f"{totals['heldout']['files']} held out, {len(manifest.packages)} packages")

    tokenizer_path = work / "tokenizer.json"
    resume_model = None
    if args.resume_from:
        resume_model = args.resume_from / "model"
        if (resume_model / BUNDLE).is_file():  # the returned files are read-only: unpack a copy
            resume_model = unpack_tree(resume_model, work / "resume-model")
        shutil.copyfile(resume_model / "tokenizer.json", tokenizer_path)
        log(f"resuming from step {state['step']} of {args.resume_from} (its tokenizer)")
    else:
        train_tokenizer(sample_texts(work / "corpus", args.tokenizer_bytes), VOCAB_SIZE, tokenizer_path,
                        progress=False)
        log(f"tokenizer trained on up to {args.tokenizer_bytes / 1e6:.0f} MB")

    trainer = Trainer(work / "corpus", tokenizer_path, work / "train", settings)
    if resume_model is not None:
        trainer.resume_from_export(resume_model, state)
    train_deadline = end - export_reserve - check_reserve
    if settings.schedule_minutes is None:
        settings.schedule_minutes = max(0.1, (train_deadline - time.monotonic()) / 60)
    params = sum(p.numel() for p in trainer.model.parameters())
    log(f"{params:,} parameters; {trainer.train_tokens / 1e6:.1f}M training tokens; batch {settings.batch_size} x "
        f"prompt {settings.prompt_len}; lr {settings.lr} over {settings.schedule_minutes:.1f} training minutes; "
        f"training for {(train_deadline - time.monotonic()) / 60:.1f} min from step {trainer.step}")

    runs = [*(state or {}).get("runs", []),
            {"device": f"{settings.device} ({gpu})", "start_step": trainer.step, "end_step": trainer.step}]
    writer = RunWriter(out_dir, manifest.manifest_path, int(args.shard_mb * 2**20), args.bundle, runs, log)
    first_step, started = trainer.step, time.monotonic()
    trainer.train(deadline=train_deadline, progress=False, log=log,
                  checkpoint=lambda: writer.maybe_save(trainer, args.save_minutes * 60))
    steps = trainer.step - first_step
    log(f"trained {steps} steps in {time.monotonic() - started:.0f} s "
        f"({steps / max(1e-9, time.monotonic() - started):.2f} steps/s)")
    model_dir = writer.save(trainer)

    if args.eval_samples:
        write_quick_check(args, model_dir, work, settings.device, end, check_reserve, out_dir, log)
    log(f"done: step {trainer.step}, {(time.monotonic() - zero) / 60:.2f} min since start")
    return 0


def write_quick_check(args, model_dir: Path, work: Path, device: str, end: float, check_reserve: float,
                      out_dir: Path, log: Log) -> None:
    from .quick_check import humaneval_single_line

    try:
        if (model_dir / BUNDLE).is_file():
            model_dir = unpack_tree(model_dir, work / "check-model")
        deadline = end - min(2.0, 0.05 * args.minutes * 60)
        summary = humaneval_single_line(model_dir, device, args.eval_samples, deadline, data_dir=args.humaneval_dir,
                                        check_seconds=min(15.0, check_reserve / 3))
    except (OSError, ValueError) as err:  # no data on this machine: say so, keep the model
        summary = {"error": f"{type(err).__name__}: {err}"}
    (out_dir / "quality.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    log(f"quick check: {json.dumps({k: v for k, v in summary.items() if k != 'examples'})}")


if __name__ == "__main__":
    sys.exit(main())
