"""HumanEval-Infilling (Bavarian et al. 2022): the tasks, and pass@1 of a completion function.

The data lives beside the project, in `<repo>/../shared/data/humaneval-infilling/` (gzipped
JSON lines; each record has `task_id, entry_point, prompt, suffix, canonical_solution, test`;
`prompt` is the prefix and `canonical_solution` the middle). A completion passes when

    prompt + completion + suffix + "\\n" + test + "\\n" + f"check({entry_point})"

runs to its end within the timeout (3 s) in the sandbox (`sandbox.run_python`).

`evaluate` first asks `complete_fn(prefix, suffix)` for every task in turn (the model is the
bottleneck and its timings are cleaner with nothing running beside it), then runs the checks
in a small thread pool (`check_all`; each check is its own subprocess). With one completion
per task, pass@1 is the share of tasks that pass.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from .sandbox import run_python

REPO = Path(__file__).resolve().parents[2]
DATA_ENV = "DG_LSP_HUMANEVAL_DIR"  # overrides the data folder
# name -> (file, number of tasks)
SETS: dict[str, tuple[str, int]] = {
    "single-line": ("HumanEval-SingleLineInfilling.jsonl.gz", 1033),
    "multi-line": ("HumanEval-MultiLineInfilling.jsonl.gz", 5815),
    "random-span-light": ("HumanEval-RandomSpanInfillingLight.jsonl.gz", 164),
}
FIELDS = ("task_id", "entry_point", "prompt", "suffix", "canonical_solution", "test")

T = TypeVar("T")


@dataclass(frozen=True)
class Task:
    task_id: str
    entry_point: str
    prompt: str  # the prefix
    suffix: str
    canonical_solution: str  # the middle
    test: str

    def program(self, completion: str) -> str:
        return self.prompt + completion + self.suffix + "\n" + self.test + "\n" + f"check({self.entry_point})"


@dataclass
class TaskOutcome:
    task_id: str
    completion: str
    passed: bool
    status: str  # the sandbox's: passed, failed, timeout, error
    stderr_tail: str = ""


@dataclass
class EvalResults:
    outcomes: list[TaskOutcome] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.outcomes)

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def pass_at_1(self) -> float:
        return self.passed / self.n if self.outcomes else float("nan")

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        return counts


def default_data_dir(repo_root: str | Path | None = None) -> Path:
    """`$DG_LSP_HUMANEVAL_DIR`, else `<repo_root>/../shared/data/humaneval-infilling`."""
    if repo_root is None and os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(repo_root or REPO).resolve().parent / "shared" / "data" / "humaneval-infilling"


def load_tasks(name: str, data_dir: str | Path | None = None) -> list[Task]:
    """The tasks of one set ("single-line", "multi-line" or "random-span-light"), in file order."""
    if name not in SETS:
        raise ValueError(f"unknown HumanEval-Infilling set {name!r}; one of {', '.join(SETS)}")
    path = Path(data_dir) if data_dir is not None else default_data_dir()
    path = path / SETS[name][0]
    if not path.is_file():
        raise FileNotFoundError(f"HumanEval-Infilling data not found: {path} (the shared data folder beside the repository, "
                                f"or set {DATA_ENV} / pass the folder)")
    tasks = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            missing = [k for k in FIELDS if k not in record]
            if missing:
                raise ValueError(f"{path}:{number}: record lacks {', '.join(missing)}")
            tasks.append(Task(**{k: record[k] for k in FIELDS}))
    return tasks


def subset(items: Sequence[T], limit: int | None = None, seed: int | None = None) -> list[T]:
    """At most `limit` items, deterministically: the first ones (seed None), or a sample drawn with
    `random.Random(seed)`, kept in their original order. No limit: all of them."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    if seed is None:
        return list(items[:limit])
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


def check(task: Task, completion: str, timeout_s: float = 3.0) -> TaskOutcome:
    result = run_python(task.program(completion), timeout_s)
    return TaskOutcome(task.task_id, completion, result.passed, result.status,
                       "" if result.passed else result.stderr_tail)


def check_all(
    tasks: Sequence[Task],
    completions: Sequence[str],
    timeout_s: float = 3.0,
    workers: int = 2,
    progress: bool = True,
    desc: str = "humaneval",
) -> EvalResults:
    """Each task's program with its completion, run in the sandbox by `workers` threads."""
    if len(completions) != len(tasks):
        raise ValueError(f"{len(tasks)} tasks but {len(completions)} completions")
    results = EvalResults()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = pool.map(lambda pair: check(pair[0], pair[1], timeout_s), zip(tasks, completions))
        for outcome in tqdm(futures, total=len(tasks), desc=f"{desc}: check", unit="task", disable=not progress):
            results.outcomes.append(outcome)
    return results


def passing_empty(tasks: Sequence[Task], timeout_s: float = 3.0, workers: int = 2, progress: bool = True,
                  desc: str = "humaneval") -> set[str]:
    """The ids of the tasks whose tests pass with the hole left as one empty line. A model that
    writes nothing passes these too (27 of the 1,033 single-line tasks), so its passes on the
    other tasks are what it solved."""
    results = check_all(tasks, ["\n"] * len(tasks), timeout_s, workers, progress, f"{desc} (empty line)")
    return {outcome.task_id for outcome in results.outcomes if outcome.passed}


def evaluate(
    tasks: Sequence[Task],
    complete_fn: Callable[[str, str], str],
    timeout_s: float = 3.0,
    workers: int = 2,
    progress: bool = True,
    desc: str = "humaneval",
) -> EvalResults:
    """One completion per task from `complete_fn(prefix, suffix)`, each checked in the sandbox."""
    completions = [complete_fn(task.prompt, task.suffix)
                   for task in tqdm(tasks, desc=f"{desc}: complete", unit="task", disable=not progress)]
    return check_all(tasks, completions, timeout_s, workers, progress, desc)
