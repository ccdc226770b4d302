"""What every benchmark record says about where and when it was measured, and where it goes.

Shared by the scripts in benchmarks/: the git commit (and whether the measured code had
uncommitted changes), the device, latency percentiles, and the JSON file under
benchmarks/results/.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent


def _git(*argv: str) -> str | None:
    try:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_state() -> tuple[str, bool | None]:
    """(short commit, dirty): result files written by benchmarks do not make the code dirty."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    status = _git("status", "--porcelain")
    if status is None:
        return commit, None
    changed = [line for line in status.splitlines() if not line[3:].startswith("benchmarks/results")]
    return commit, bool(changed)


def package_version(name: str) -> str | None:
    """An installed distribution's version (None when it is not installed), for the records."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def device_description(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"kind": "cuda", "name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda}
    name = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return {"kind": "cpu", "name": name or "unknown", "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}


def record_header(benchmark: str, started: dt.datetime, device: dict[str, Any]) -> dict[str, Any]:
    """The fields every record starts with: what, when, which code, on what device."""
    commit, dirty = git_state()
    return {"benchmark": benchmark, "date": started.isoformat(timespec="seconds"), "git_commit": commit,
            "git_dirty": dirty, "device": device, "torch": torch.__version__}


# Record files this process has claimed, by (folder, benchmark, device, start): a run rewrites
# its own record as cases finish, but never another run's that started in the same second.
_claimed_paths: dict[tuple[Path, str, str, str], Path] = {}


def _claim_record_path(out_dir: Path, benchmark: str, device_kind: str, stamp: str) -> Path:
    """The first free name of `benchmark-device-stamp.json`, `...-2.json`, ... created empty,
    so a second run started in the same second gets the next one."""
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = out_dir / f"{benchmark}-{device_kind}-{stamp}{suffix}.json"
        try:
            path.open("x", encoding="utf-8").close()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free record name for {benchmark}-{device_kind}-{stamp} in {out_dir}")


def write_record(record: dict[str, Any], out_dir: Path, benchmark: str, device_kind: str, now: dt.datetime) -> Path:
    """Write (or rewrite, later in the same run) the record of the run that started at `now`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    key = (out_dir.resolve(), benchmark, device_kind, stamp)
    path = _claimed_paths.get(key)
    if path is None:
        path = _claimed_paths[key] = _claim_record_path(out_dir, benchmark, device_kind, stamp)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def percentile(values: list[float], q: float) -> float | None:
    """numpy's percentile (linear interpolation); None for no values."""
    return float(np.percentile(values, q)) if values else None


def latency_stats(values: list[float]) -> dict[str, Any]:
    """n, p50, p95, mean and max of timings in milliseconds."""
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "mean_ms": None, "max_ms": None}
    return {"n": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
            "mean_ms": float(np.mean(values)), "max_ms": float(np.max(values))}


def publish_record(record: dict[str, Any], out_dir: Path, benchmark: str, device_kind: str, now: dt.datetime) -> Path:
    """Write the record (`write_record`), say where on stderr, and print it as one JSON line."""
    path = write_record(record, out_dir, benchmark, device_kind, now)
    print(f"wrote {path}", file=sys.stderr)
    print(json.dumps(record))
    return path
