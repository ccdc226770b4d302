"""`dg-lsp` on the command line: output, and clear errors without tracebacks."""

import json
import subprocess
import sys

import pytest

from dg_lsp import __version__
from dg_lsp.cli import split_at_cursor
from dg_lsp.errors import InputError


def dg_lsp(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "dg_lsp", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_version():
    result = dg_lsp("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"dg-lsp {__version__}"


def test_split_at_cursor_counts_characters_from_one():
    text = "héllo 世界\r\nsecond\n"
    assert split_at_cursor(text, 1, 7) == ("héllo ", "世界\r\nsecond\n")
    assert split_at_cursor(text, 2, 7) == ("héllo 世界\r\nsecond", "\n")  # one past the end of the line
    assert split_at_cursor(text, 3, 1) == (text, "")
    with pytest.raises(InputError, match="line 4 is outside"):
        split_at_cursor(text, 4, 1)
    assert split_at_cursor(text, 1, 9) == ("héllo 世界", "\r\nsecond\n")
    with pytest.raises(InputError, match="column 10 is outside line 1"):
        split_at_cursor(text, 1, 10)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "fib.py"
    path.write_text("def fibonacci(n):\n    a, b = 0, 1\n    \n    return a\n", encoding="utf-8")
    return path


def test_infill_json(dense_dir, source):
    result = dg_lsp("infill", "--model", dense_dir, "--file", source, "--line", 3, "--column", 5,
                    "--canvas", 16, "--steps", 3, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert isinstance(record["text"], str) and 1 <= record["nfe"] <= 3
    assert record["timings_ms"]["total"] > 0 and record["prompt_tokens"] > 5


def test_infill_plain_text_is_deterministic_for_a_seed(dense_dir, source):
    args = ("infill", "--model", dense_dir, "--file", source, "--line", 3, "--column", 5, "--canvas", 16,
            "--steps", 2, "--seed", 3)
    first, second = dg_lsp(*args), dg_lsp(*args)
    assert first.returncode == 0 and first.stdout == second.stdout


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(line=99), "line 99 is outside the file"),
        (dict(column=40), "column 40 is outside line 3"),
        (dict(model="/nonexistent/model"), "model directory not found"),
        (dict(file="/nonexistent/file.py"), "file not found"),
        (dict(canvas=8), "canvas length must be between 16 and 256"),
        (dict(content=b"\x00\x01binary"), "looks binary"),
        (dict(content=b"caf\xe9 = 1\n"), "is not UTF-8 text"),
        (dict(device="tpu"), "unknown device"),
    ],
)
def test_bad_input_exits_2_with_a_message(dense_dir, source, change, message):
    if "content" in change:
        source.write_bytes(change["content"])
    args = dict(model=dense_dir, file=source, line=3, column=5, canvas=16)
    args.update({k: v for k, v in change.items() if k != "content"})
    if "content" in change:
        args["line"], args["column"] = 1, 1
    argv = ["infill", "--steps", 1]
    for key, value in args.items():
        argv += [f"--{key}", value]
    result = dg_lsp(*argv)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_tcp_address_defaults_to_loopback():
    from dg_lsp.cli import parse_tcp_address

    assert parse_tcp_address("2087") == ("127.0.0.1", 2087)
    assert parse_tcp_address(":2087") == ("127.0.0.1", 2087)
    assert parse_tcp_address("0.0.0.0:9000") == ("0.0.0.0", 9000)  # only when asked for
    assert parse_tcp_address("[::1]:9000") == ("::1", 9000)
    with pytest.raises(InputError):
        parse_tcp_address("localhost:http")
