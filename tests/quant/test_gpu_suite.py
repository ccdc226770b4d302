"""benchmarks/gpu_suite.sh: lists its steps in order of value, and refuses at once without a GPU."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.sh"
ORDER = ["environment", "gpu-tests", "end-to-end-fp8", "end-to-end-int4", "kernel-benchmarks", "dream-family", "end-to-end-bf16",
         "end-to-end-int8", "transformers-reference"]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _suite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_dry_run_lists_every_step_in_order_with_its_limit(tmp_path):
    result = _suite("--dry-run", str(tmp_path / "out"), "600")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [line[0] for line in lines] == ORDER
    assert all(line[1] == "limit" and line[2].endswith("s") for line in lines)
    assert "--formats fp8" in result.stdout and "--formats none" in result.stdout and "--steps 16,48" in result.stdout
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_refuses_at_once_without_a_gpu(tmp_path):
    result = _suite(str(tmp_path / "out"), "600")
    assert result.returncode == 2
    assert "no NVIDIA GPU" in result.stderr or "no CUDA device" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [(), ("only-outdir",), ("out", "ten"), ("out", "0"), ("--bogus", "out", "5")])
def test_bad_arguments_get_the_usage(args):
    result = _suite(*args)
    assert result.returncode == 64 and "usage:" in result.stderr
