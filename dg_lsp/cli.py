"""The `dg-lsp` command line."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from . import __version__
from .errors import DgLspError, InputError

MAX_FILE_BYTES = 16 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dg-lsp", description="Code infilling with a block-diffusion language model.")
    parser.add_argument("--version", action="version", version=f"dg-lsp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="[HOST:]PORT", default=None,
                       help="listen on TCP instead of stdio; HOST defaults to 127.0.0.1 (loopback)")
    serve.add_argument("--model", type=Path, default=None, help="model directory (overrides dgLsp.modelPath)")
    serve.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="overrides dgLsp.device")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    train = commands.add_parser("train", help="train the default model (see dg_lsp/train/loop.py)")
    from .train.settings import add_arguments as add_train_arguments
    add_train_arguments(train)

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

    quantize = commands.add_parser("quantize", help="write a quantized copy of a model directory (int8, int4 or fp8)")
    quantize.add_argument("--bits", required=True, choices=["8", "4", "fp8"],
                          help="8: int8 per channel; 4: int4 per group of input columns; fp8: e4m3 (Hopper FP8 matmul)")
    quantize.add_argument("--group-size", type=int, default=128, help="int4 group size in input columns (default 128)")
    quantize.add_argument("--shard-gb", type=float, default=4.0, help="largest output shard in GB (default 4)")
    quantize.add_argument("src", type=Path, help="source model directory (bf16 safetensors)")
    quantize.add_argument("dst", type=Path, help="new output directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        if args.command == "infill":
            return run_infill(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "quantize":
            return run_quantize(args)
        if args.command == "train":
            from .train.loop import run as run_train

            return run_train(args)
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


def run_quantize(args: argparse.Namespace) -> int:
    from .model.quantize import format_for_bits, quantize_checkpoint

    if args.shard_gb <= 0:
        raise InputError(f"--shard-gb must be positive, got {args.shard_gb}")
    report = quantize_checkpoint(args.src, args.dst, format_for_bits(args.bits), group_size=args.group_size,
                                 shard_bytes=int(args.shard_gb * 2**30), progress=sys.stderr.isatty())
    for line in report.skipped:
        print(f"dg-lsp: kept unquantized: {line}", file=sys.stderr)
    print(f"{report.format}: {len(report.quantized)} tensors quantized, {len(report.kept)} copied; "
          f"{report.bytes_in / 2**30:.2f} GiB -> {report.bytes_out / 2**30:.2f} GiB in {len(report.shards)} shard(s) "
          f"under {args.dst}")
    return 0


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def parse_tcp_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"  # loopback unless a host is named
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--tcp wants [HOST:]PORT with a port from 1 to 65535, got {value!r}")
    return host, int(port)


def run_serve(args: argparse.Namespace) -> NoReturn:
    from .server.app import create_server

    # stdout carries the protocol in stdio mode: logs go to stderr.
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="dg-lsp %(levelname)s %(name)s: %(message)s")
    if args.log_level != "DEBUG":  # pygls logs every message body at INFO: costly for big documents
        logging.getLogger("pygls").setLevel(logging.WARNING)
    address = parse_tcp_address(args.tcp) if args.tcp else None
    if address and not is_loopback(address[0]):
        # The protocol has no authentication: whoever connects reads the files the editor
        # sends and drives the model (and its edits) as if they were the editor.
        print(f"dg-lsp: warning: listening on {address[0]}, which is not a loopback address: anyone who can "
              f"reach port {address[1]} over the network can read the code your editor sends and drive the "
              "model, with no authentication. Use 127.0.0.1 unless you trust that network.", file=sys.stderr)
    server = create_server()
    overrides = {k: v for k, v in (("modelPath", str(args.model) if args.model else None),
                                   ("device", args.device)) if v is not None}
    server.cli_overrides = overrides
    server.apply_settings({})
    try:
        if address:
            server.start_tcp(*address)
        else:
            server.start_io()
    except SystemExit:  # `exit` in TCP mode (in stdio mode the reader loop takes it)
        pass
    except OSError as err:
        if address is None:
            raise
        raise InputError(f"cannot listen on {address[0]}:{address[1]}: {err.strerror or err}") from None
    exit_now(server)


def exit_now(server) -> NoReturn:
    """End the server process at once, model work included. The interpreter's own teardown
    would wait for the model thread's current request and then garbage-collect torch's whole
    object graph (over a second on a laptop), while an editor waits for `exit` to be done."""
    server.worker.shutdown()  # idempotent: `exit` and the end of input have called it already
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # `exit` closed stdout; the client may have closed its end
            pass
    os._exit(0)
