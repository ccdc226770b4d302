"""The `dg-lsp` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import DgLspError, InputError

MAX_FILE_BYTES = 16 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dg-lsp", description="Code infilling with a block-diffusion language model.")
    parser.add_argument("--version", action="version", version=f"dg-lsp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    infill = commands.add_parser("infill", help="print the completion at a cursor position in a file")
    infill.add_argument("--model", required=True, type=Path, help="local Hugging Face model directory")
    infill.add_argument("--file", required=True, type=Path, help="source file to complete")
    infill.add_argument("--line", required=True, type=int, help="cursor line, counted from 1")
    infill.add_argument("--column", required=True, type=int, help="cursor column in characters, counted from 1")
    infill.add_argument("--canvas", type=int, default=None, help="canvas length in tokens (16 to 256)")
    infill.add_argument("--max-tokens", type=int, default=None, help="most tokens to generate (default: one canvas)")
    infill.add_argument("--steps", type=int, default=None, help="most denoising steps per canvas")
    infill.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    infill.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    infill.add_argument("--json", action="store_true", help="print JSON: text, nfe, timings in ms")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        if args.command == "infill":
            return run_infill(args)
    except DgLspError as err:
        print(f"dg-lsp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def split_at_cursor(text: str, line: int, column: int) -> tuple[str, str]:
    """Split `text` at a 1-based line and character column; the column may be one past the end."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise InputError(f"line {line} is outside the file (it has {len(lines)} lines)")
    length = len(lines[line - 1].rstrip("\r"))
    if not 1 <= column <= length + 1:
        raise InputError(f"column {column} is outside line {line} (it has {length} characters)")
    offset = sum(len(part) + 1 for part in lines[: line - 1]) + column - 1
    return text[:offset], text[offset:]


def read_source(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path} is {size / 2**20:.1f} MiB; files over {MAX_FILE_BYTES // 2**20} MiB are not completed")
    data = path.read_bytes()
    if b"\x00" in data:
        raise InputError(f"{path} looks binary (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def run_infill(args: argparse.Namespace) -> int:
    import torch  # imported here so `dg-lsp --version` stays instant

    from .engine.engine import Engine

    prefix, suffix = split_at_cursor(read_source(args.file), args.line, args.column)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}: use cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but this machine has no CUDA GPU")
    engine = Engine.from_directory(args.model, device=device, progress=not args.json and sys.stderr.isatty())
    completion = engine.infill(
        prefix, suffix, canvas_length=args.canvas, max_new_tokens=args.max_tokens, max_steps=args.steps, seed=args.seed
    )
    if args.json:
        print(json.dumps(completion.to_json(), ensure_ascii=False))
    else:
        print(completion.text)
    return 0
