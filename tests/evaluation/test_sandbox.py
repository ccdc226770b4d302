"""The sandbox runs programs with a timeout and limits, blocks the network, and cleans up."""

import tempfile
import time

import pytest

from dg_lsp.evaluation.sandbox import run_python


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """Sandboxes make their directories here, so a test can see what is left behind."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_a_good_program_passes():
    result = run_python("import math\nassert math.gcd(12, 18) == 6\nprint('fine')\n")
    assert result.passed and result.status == "passed" and result.returncode == 0


def test_a_failing_assertion_fails_with_its_traceback():
    result = run_python("def check():\n    assert 1 + 1 == 3, 'arithmetic'\ncheck()\n")
    assert not result.passed and result.status == "failed"
    assert "AssertionError: arithmetic" in result.stderr_tail
    assert 'File "program.py", line 2' in result.stderr_tail  # the program's own line numbers


def test_an_infinite_loop_times_out_within_a_second_of_the_limit():
    start = time.perf_counter()
    result = run_python("while True:\n    pass\n", timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert time.perf_counter() - start < 2.0


def test_a_sleeping_child_process_group_is_killed():
    start = time.perf_counter()
    result = run_python("import time\ntime.sleep(60)\n", timeout_s=0.5)
    assert result.status == "timeout" and time.perf_counter() - start < 1.5


def test_a_syntax_error_is_an_error():
    result = run_python("def broken(:\n    return 1\n")
    assert result.status == "error" and not result.passed
    assert "SyntaxError" in result.stderr_tail


def test_other_exceptions_and_early_exits_are_errors():
    assert run_python("raise KeyError('x')\n").status == "error"
    assert run_python("import sys\nsys.exit(0)\nassert False\n").status == "error"


def test_the_network_is_blocked():
    result = run_python("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n")
    assert result.status == "error" and "blocked by the dg-lsp evaluation sandbox" in result.stderr_tail
    # Modules that subclass socket still import; connecting is what fails.
    assert run_python("import ssl, urllib.request\n").passed
    result = run_python("import socket\nsocket.create_connection(('127.0.0.1', 9))\n")
    assert "PermissionError" in result.stderr_tail


def test_processes_cannot_be_started():
    result = run_python("import subprocess\nsubprocess.run(['true'])\n")
    assert result.status == "error" and "PermissionError" in result.stderr_tail
    assert run_python("import os\nos.system('true')\n").status == "error"


def test_memory_is_limited():
    result = run_python("block = bytearray(4 << 30)\n")
    assert result.status == "error" and "MemoryError" in result.stderr_tail


def test_the_program_runs_in_its_own_directory_with_a_clean_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("PYTHONPATH", "/nowhere")
    program = (
        "import os, sys\n"
        "assert os.path.exists('program.py')\n"
        "assert 'HTTPS_PROXY' not in os.environ and 'PYTHONPATH' not in os.environ, os.environ\n"
        "assert sys.flags.no_site and sys.flags.no_user_site\n"
    )
    assert run_python(program).passed


def test_string_hashes_are_the_same_in_every_run():
    program = "import sys\nsys.stderr.write(str(hash('dg-lsp')))\n"
    assert run_python(program).stderr_tail == run_python(program).stderr_tail != ""


def test_no_temporary_directory_is_left_behind(private_tmp):
    run_python("open('scratch.txt', 'w').write('x')\n")
    run_python("while True:\n    pass\n", timeout_s=0.3)
    assert list(private_tmp.iterdir()) == []
