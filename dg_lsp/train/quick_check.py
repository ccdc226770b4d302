"""A quick quality check at the end of a training run: HumanEval-Infilling single-line pass@1
on a seeded sample, block-diffusion decoding, completions run in the sandbox.

A smoke signal for the run (did the model learn to write code?), not the measurement:
`benchmarks/quality.py` is that. The same rules as there: a canvas of 32 tokens, the
completion cut after its first line break (one added when it has none). Completions stop
when `deadline` (a `time.monotonic()` value) is near, and only those made (one at least) are
checked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..engine.engine import Engine
from ..evaluation import humaneval

def first_line_with_break(text: str) -> str:
    return text.split("\n", 1)[0] + "\n"


def humaneval_single_line(model_dir: Path, device: str, samples: int, deadline: float,
                          data_dir: Path | None = None, steps: int = 12, seed: int = 0,
                          workers: int = 4, check_seconds: float = 15.0) -> dict[str, Any]:
    """`check_seconds` are kept back from the deadline for the sandboxed checks."""
    started = time.monotonic()
    tasks = humaneval.subset(humaneval.load_tasks("single-line", data_dir), samples, seed=0)
    engine = Engine.from_directory(model_dir, device=device, progress=False)
    completions = []
    for task in tasks:
        if completions and time.monotonic() > deadline - check_seconds:  # one at least: a sign of life
            break
        completion = engine.infill(task.prompt, task.suffix, canvas_length=32, max_new_tokens=32,
                                   max_steps=steps, seed=seed)
        completions.append(first_line_with_break(completion.text))
    checked = tasks[: len(completions)]
    results = humaneval.check_all(checked, completions, workers=workers, progress=False)
    return {
        "set": "humaneval single-line", "decoding": "diffusion", "max_steps": steps, "seed": seed,
        "asked": samples, "n": results.n, "passed": results.passed,
        "pass_at_1": results.pass_at_1 if results.n else None, "status": results.status_counts(),
        "seconds": round(time.monotonic() - started, 1), "device": device,
        "examples": [{"task_id": o.task_id, "completion": o.completion, "status": o.status}
                     for o in results.outcomes[:5]],
    }
