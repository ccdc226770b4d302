"""Pack a model directory's small files into one `bundle.json`, and unpack it again.

A sharded model directory has many files: 3 weight shards, the shard index, config,
generation config, `dg_lsp.json`, the tokenizer and the model card files. For copying a run's
output between machines fewer files are handier: packed, it is the shards plus `bundle.json`
(`{"files": {name: text}}`, every file that is not `*.safetensors`); unpacking writes those
files back and removes the bundle, giving the loadable directory again.

    python -m dg_lsp.train.bundle unpack OUT_DIR runs/gpu-1 [--join-shards]

copies a pipeline output folder (which may be read-only) and unpacks every bundle in it;
`--join-shards` also joins the weight shards into one `model.safetensors`, the layout the
shipped default model has.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

BUNDLE = "bundle.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # plain file names only: no paths, no ".."


def pack_directory(directory: Path) -> Path:
    """Move every file of `directory` but the weights into `directory/bundle.json`."""
    directory = Path(directory)
    files = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix != ".safetensors" and path.name != BUNDLE:
            files[path.name] = path.read_text(encoding="utf-8")
    bundle = directory / BUNDLE
    tmp = bundle.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"files": files}, ensure_ascii=False), encoding="utf-8")
    tmp.replace(bundle)
    for name in files:
        (directory / name).unlink()
    return bundle


def unpack_directory(directory: Path) -> Path:
    """Write the files of `directory/bundle.json` back beside it and remove the bundle."""
    directory = Path(directory)
    bundle = directory / BUNDLE
    files = json.loads(bundle.read_text(encoding="utf-8"))["files"]
    for name in files:
        if not _SAFE_NAME.match(name) or name == BUNDLE:
            raise ValueError(f"{bundle}: refusing the file name {name!r}")
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    bundle.unlink()
    return directory


def unpack_tree(src: Path, dst: Path, join_shards: bool = False) -> Path:
    """Copy `src` to `dst` (which must not exist) and unpack every bundle in the copy."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} exists; choose a new folder")
    for path in sorted(src.rglob("*")):  # file by file: the copies are writable, the originals may not be
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for bundle in sorted(dst.rglob(BUNDLE)):
        unpack_directory(bundle.parent)
    if join_shards:
        for index in sorted(dst.rglob("model.safetensors.index.json")):
            join_weight_shards(index.parent)
    return dst


def join_weight_shards(directory: Path) -> None:
    """Rewrite sharded weights (with their index) as one `model.safetensors`."""
    from safetensors.torch import load_file

    from .export import save_weights

    shards = sorted(Path(directory).glob("model-*-of-*.safetensors"))
    if shards:
        tensors = {name: tensor for shard in shards for name, tensor in load_file(shard).items()}
        save_weights(tensors, Path(directory))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dg_lsp.train.bundle", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    unpack = commands.add_parser("unpack", help="copy SRC to DST and unpack every bundle.json in it")
    unpack.add_argument("src", type=Path)
    unpack.add_argument("dst", type=Path)
    unpack.add_argument("--join-shards", action="store_true", help="one model.safetensors, as the shipped model")
    pack = commands.add_parser("pack", help="pack a model directory's small files into bundle.json")
    pack.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "unpack":
        print(f"unpacked into {unpack_tree(args.src, args.dst, args.join_shards)}")
    else:
        print(f"packed into {pack_directory(args.directory)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
