"""What a careless or hostile user gets: one row per mistake, each with the exact line(s) it must print.

Every row runs ``hf-i3d`` (``hf_i3d.cli.main``) in a folder of prepared files (a tiny model, short, small and odd
videos, small checkpoints) and compares the exit code and *every* stderr line: one clear line, never a traceback.
A regression is one failing row. The example script and the data-file rows live with them (``test_training.py``,
``test_data.py``); the conversion-safety properties that need more than one command are the tests below the table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from _video_utils import write_video

from hf_i3d import I3DConfig, I3DForVideoClassification, I3DVideoProcessor, decoding
from hf_i3d.cli import main as cli_main
from hf_i3d.convert import save_converted
from hf_i3d.zoo import ZOO, get_entry

LABELS = ["archery", "bowling", "cartwheeling"]
NON_UTF8 = os.fsdecode(b"caf\xe9.mp4")  # a Latin-1 file name, as Linux keeps it (surrogate-escaped)


def mmaction_state(model: I3DForVideoClassification) -> dict[str, torch.Tensor]:
    """Our state dict under mmaction2's key names (the inverse of ``convert.mmaction.mmaction_key_to_hf``)."""
    state = {}
    for key, value in model.state_dict().items():
        new = key.replace("i3d.stem.conv.", "backbone.conv1.").replace(".norm.", ".bn.")
        new = new.replace(".shortcut.", ".downsample.").replace("classifier.", "cls_head.fc_cls.")
        if new.startswith("i3d.stages."):
            _, _, stage, _, block, rest = new.split(".", 5)
            new = f"backbone.layer{int(stage) + 1}.{block}.{rest}"
        state[new] = value.clone()
    return state


class Eval:
    """Pickles as a call of ``builtins.eval`` (what a hostile checkpoint carries); never run by the converter."""

    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def write_resolution_change(path: Path) -> None:
    """An MPEG-TS H.264 video of 10 frames at 64x48 followed by 10 at 32x24 (two streams concatenated)."""
    import av
    from _video_utils import synthetic_frames

    parts = []
    for width, height in ((64, 48), (32, 24)):
        part = path.with_suffix(f".{width}.ts")
        with av.open(str(part), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "10", "preset": "ultrafast"}
            for frame in synthetic_frames(10, width, height):
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        parts.append(part.read_bytes())
        part.unlink()
    path.write_bytes(b"".join(parts))


def write_gif(path: Path, num_frames: int = 20) -> None:
    from _video_utils import synthetic_frames
    from PIL import Image

    images = [Image.fromarray(frame) for frame in synthetic_frames(num_frames, 32, 32)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)


def save_model_folder(folder: Path, test_crop_size: int = 32) -> None:
    torch.manual_seed(0)
    config = I3DConfig(base_channels=4, num_frames=8, id2label=dict(enumerate(LABELS)))
    model = I3DForVideoClassification(config).eval()
    processor = I3DVideoProcessor.from_zoo_entry(
        get_entry("i3d-r50-kinetics400"),
        num_frames=8,
        short_side=32,
        crop_size={"height": 32, "width": 32},
        test_crop_size=test_crop_size,
    )
    save_converted(model, folder, processor.save_pretrained)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The folder every row runs in."""
    root = tmp_path_factory.mktemp("bad-inputs")
    save_model_folder(root / "model")
    save_model_folder(root / "model-crop24", test_crop_size=24)
    shutil.copytree(root / "model", root / "model-noproc")
    (root / "model-noproc" / "video_preprocessor_config.json").unlink()
    shutil.copytree(root / "model", root / "model-badproc")
    (root / "model-badproc" / "video_preprocessor_config.json").write_text('{"num_frames": 8,')
    (root / "empty").mkdir()
    (root / "notmodel" / "data").mkdir(parents=True)
    (root / "notmodel" / "notes.odt").write_text("mine")
    (root / "afile.txt").write_text("a file")
    write_video(root / "ok.mp4", 20)
    write_video(root / "short.mp4", 3)
    write_video(root / "tiny16.mp4", 20, width=16, height=16)
    shutil.copy(root / "ok.mp4", root / NON_UTF8)
    write_gif(root / "clip.gif")
    write_resolution_change(root / "change.ts")
    (root / "garbage.mp4").write_bytes(b"not a video\n" * 50)

    torch.manual_seed(0)
    small = I3DForVideoClassification(I3DConfig(base_channels=4, num_labels=6)).eval()
    state = mmaction_state(small)
    (root / "ckpts").mkdir()
    torch.save({"state_dict": state}, root / "ckpts" / "small.pth")
    nan_state = dict(state)
    nan_state["cls_head.fc_cls.weight"] = state["cls_head.fc_cls.weight"].clone()
    nan_state["cls_head.fc_cls.weight"][0, 0] = float("nan")
    nan_state["backbone.conv1.conv.weight"] = state["backbone.conv1.conv.weight"].clone()
    nan_state["backbone.conv1.conv.weight"][0, 0, 0, :2, 0] = float("inf")
    torch.save({"state_dict": nan_state}, root / "ckpts" / "nan.pth")
    torch.save({"state_dict": state, "meta": {"note": Eval()}}, root / "ckpts" / "eval.pth")
    return root


CONVERT = [
    "convert",
    "mmaction",
    "ckpts/small.pth",
    "--preset",
    "i3d-r50-kinetics400",
    "--set",
    "base_channels=4",
]
CONVERT += ["--set", "num_labels=6"]


def convert_argv(checkpoint: str, output: str, *extra: str) -> list[str]:
    argv = list(CONVERT)
    argv[2] = checkpoint
    return argv + ["--output", output, *extra]


@dataclass
class Row:
    """One mistake: the command (run in the prepared folder), the exit code and every line it must print on
    stderr (``{w}`` is the folder); ``check(world, stdout)`` asserts what else must hold."""

    id: str
    argv: list[str]
    code: int
    err: list[str]
    check: object = None


def _unchanged(*names):
    def check(world: Path, out: str) -> None:
        for name in names:
            assert (world / name).exists(), name

    return check


def _json_looped(world: Path, out: str) -> None:
    [entry] = json.loads(out)
    assert entry["looped"] is True and entry["total_frames"] == 3 and len(entry["predictions"]) == 3
    assert entry["warnings"][0].startswith("short.mp4 has 3 frames")


def _predicted(count: int):
    def check(world: Path, out: str) -> None:
        entries = json.loads(out)
        assert len(entries) == count and all(len(e["predictions"]) == 3 for e in entries)

    return check


WORKING_DIR = "name a new folder for the converted model"
NOT_MODEL = "a model is a folder holding config.json, a zoo name or a Hub id"
NAN = (
    "ckpts/nan.pth: 2 tensor(s) hold NaN or Inf values: backbone.conv1.conv.weight (2 Inf), "
    "cls_head.fc_cls.weight (1 NaN); the model would give NaN scores (pass --allow-nonfinite to convert it anyway)"
)
EVAL = (
    "ckpts/eval.pth refers to builtins.eval, which a weights file has no reason to hold; refused (nothing in it "
    "was run). Pass --trust-checkpoint if you know where the file comes from (its objects are then replaced by "
    "inert stand-ins, still never run)"
)
FALLBACK = (
    "hf_i3d: decord cannot read {video} (decoding frames 2..16 fails: Check failed: from_size == to_size "
    "(1536 vs. 768) DECORDArrayCopyFromTo: The size must exactly match); decoding it with PyAV instead (said once; "
    "later files that decord cannot read are decoded with PyAV too)"
)

ROWS = [
    # --- conversions: nothing outside the output folder is ever touched -------------------------------------
    Row(
        "convert-output-is-working-dir",
        convert_argv("ckpts/small.pth", ".", "--overwrite"),
        1,
        [f"hf-i3d convert: error: --output . is the working directory; {WORKING_DIR}"],
        _unchanged("ckpts/small.pth", "afile.txt", "model/config.json"),
    ),
    Row(
        "convert-output-above-working-dir",
        convert_argv("ckpts/small.pth", "..", "--overwrite"),
        1,
        [f"hf-i3d convert: error: --output .. is a folder above the working directory; {WORKING_DIR}"],
    ),
    Row(
        "convert-output-is-the-checkpoint-folder",
        convert_argv("ckpts/small.pth", "ckpts", "--overwrite"),
        1,
        [f"hf-i3d convert: error: --output ckpts holds the input ckpts/small.pth; {WORKING_DIR}"],
        _unchanged("ckpts/small.pth"),
    ),
    Row(
        "convert-overwrite-a-folder-that-is-no-model",
        convert_argv("ckpts/small.pth", "notmodel", "--overwrite"),
        1,
        [
            "hf-i3d convert: error: --overwrite refuses to replace notmodel: it does not look like a model folder "
            "(it holds data, notes.odt); choose another --output or remove the folder yourself"
        ],
        _unchanged("notmodel/notes.odt", "notmodel/data"),
    ),
    Row(
        "convert-output-is-a-file",
        convert_argv("ckpts/small.pth", "afile.txt"),
        1,
        ["hf-i3d convert: error: --output afile.txt is a file; name a folder"],
    ),
    Row(
        "convert-output-under-a-file",
        convert_argv("ckpts/small.pth", "afile.txt/out"),
        1,
        ["hf-i3d convert: error: --output afile.txt/out lies under the file {w}/afile.txt; name a folder"],
    ),
    Row(
        "convert-set-value-of-the-wrong-type",
        convert_argv("ckpts/small.pth", "out-type", "--set", "base_channels=four"),
        1,
        [
            "hf-i3d convert: error: --set base_channels='four': I3DConfig.base_channels takes int values, got str"
        ],
    ),
    Row(
        "convert-set-unknown-key",
        convert_argv("ckpts/small.pth", "out-unknown", "--set", "frobnicate=3"),
        1,
        [
            "hf-i3d convert: error: --set frobnicate: I3DConfig has no field 'frobnicate'; its fields: "
            + ", ".join(
                name for name, kind in I3DConfig.__annotations__.items() if "ClassVar" not in str(kind)
            )
        ],
    ),
    Row(
        "convert-set-misspelled-key",
        convert_argv("ckpts/small.pth", "out-typo", "--set", "base_chanels=4"),
        1,
        [
            "hf-i3d convert: error: --set base_chanels: I3DConfig has no field 'base_chanels'; did you mean "
            "base_channels or num_channels?"
        ],
    ),
    Row(
        "convert-wrong-class-count-reported-once",  # a wrong-shape key is a mismatch, not also a missing key
        convert_argv("ckpts/small.pth", "out-classes", "--set", "num_labels=5"),
        1,
        [
            "hf-i3d convert: error: ckpts/small.pth does not match the config (depth=50, base_channels=4, "
            "inflate_style=3x1x1, num_labels=5): 2 shape mismatch(es): cls_head.fc_cls.weight: checkpoint (6, 128) "
            "vs config (5, 128), cls_head.fc_cls.bias: checkpoint (6,) vs config (5,); for a checkpoint with N "
            "classes pass --set num_labels=N"
        ],
    ),
    Row(
        "convert-nan-weights", convert_argv("ckpts/nan.pth", "out-nan"), 1, [f"hf-i3d convert: error: {NAN}"]
    ),
    Row(
        "convert-nan-weights-allowed",
        convert_argv("ckpts/nan.pth", "out-nan-allowed", "--allow-nonfinite"),
        0,
        [],
        _unchanged("out-nan-allowed/model.safetensors"),
    ),
    Row(
        "convert-eval-payload",
        convert_argv("ckpts/eval.pth", "out-eval"),
        1,
        [f"hf-i3d convert: error: {EVAL}"],
    ),
    Row(
        "convert-eval-payload-trusted",
        convert_argv("ckpts/eval.pth", "out-eval-trusted", "--trust-checkpoint"),
        0,
        [],
        _unchanged("out-eval-trusted/model.safetensors"),
    ),
    Row(
        "convert-unknown-preset",
        convert_argv("ckpts/small.pth", "out-preset") + ["--preset", "i3d-r18"],
        1,
        [f"hf-i3d convert: error: Unknown zoo name 'i3d-r18'. Known names: {', '.join(sorted(ZOO))}"],
    ),
    # --- predict: the model -----------------------------------------------------------------------------------
    Row(
        "predict-model-is-a-file",
        ["predict", "ok.mp4", "--model", "afile.txt"],
        1,
        [f"hf-i3d predict: error: afile.txt is a file; {NOT_MODEL}"],
    ),
    Row(
        "predict-model-is-an-empty-folder",
        ["predict", "ok.mp4", "--model", "empty"],
        1,
        ["hf-i3d predict: error: empty is not a model folder: it is empty"],
    ),
    Row(
        "predict-model-is-not-a-model-folder",
        ["predict", "ok.mp4", "--model", "notmodel"],
        1,
        ["hf-i3d predict: error: notmodel is not a model folder: it has no config.json"],
    ),
    Row(
        "predict-model-path-missing",
        ["predict", "ok.mp4", "--model", "./models/mine"],
        1,
        ["hf-i3d predict: error: ./models/mine: no such model folder"],
    ),
    Row(
        "predict-zoo-name-typo",
        ["predict", "ok.mp4", "--model", "i3d-r50-kinetcs400"],
        1,
        [
            "hf-i3d predict: error: unknown model 'i3d-r50-kinetcs400': not a zoo name, a local folder or a Hub "
            "id (OWNER/NAME); did you mean i3d-r50-kinetics400?"
        ],
    ),
    Row(
        "predict-processor-config-missing",
        ["predict", "ok.mp4", "--model", "model-noproc"],
        1,
        [
            "hf-i3d predict: error: model-noproc has no video_preprocessor_config.json: the model's frame count, "
            "crop and normalisation are unknown (save the processor beside the model with "
            "I3DVideoProcessor.save_pretrained, or convert it again)"
        ],
    ),
    Row(
        "predict-processor-config-corrupt",
        ["predict", "ok.mp4", "--model", "model-badproc"],
        1,
        [
            "hf-i3d predict: error: model-badproc/video_preprocessor_config.json is not valid JSON (Expecting "
            "property name enclosed in double quotes: line 1 column 18 (char 17))"
        ],
    ),
    # --- predict: the options ---------------------------------------------------------------------------------
    Row(
        "predict-top-k-negative",
        ["predict", "ok.mp4", "--model", "model", "--top-k", "-3"],
        2,
        ["hf-i3d predict: error: argument --top-k: expected a positive integer, got -3 (see --help)"],
    ),
    Row(
        "predict-top-k-zero",
        ["predict", "ok.mp4", "--model", "model", "--top-k", "0"],
        2,
        ["hf-i3d predict: error: argument --top-k: expected a positive integer, got 0 (see --help)"],
    ),
    Row(  # checked when parsed: a rerun whose videos are all done must not accept it either
        "extract-features-stride-zero",
        ["extract-features", "ok.mp4", "--output", "feats", "--model", "model", "--stride", "0"],
        2,
        ["hf-i3d extract-features: error: argument --stride: expected a positive integer, got 0 (see --help)"],
    ),
    Row(
        "extract-features-clip-len-negative",
        ["extract-features", "ok.mp4", "--output", "feats", "--model", "model", "--clip-len", "-8"],
        2,
        ["hf-i3d extract-features: error: argument --clip-len: expected a positive integer, got -8 (see --help)"],
    ),
    Row(
        "predict-old-views-vocabulary-is-a-usage-error",
        ["predict", "ok.mp4", "garbage.mp4", "--model", "model-crop24", "--views", "30"],
        2,
        ["hf-i3d predict: error: argument --views: invalid choice: '30' (choose from 'single', 'multi') (see --help)"],
    ),
    # --- predict: the videos ----------------------------------------------------------------------------------
    Row(
        "predict-short-video-is-looped-and-said",
        ["predict", "short.mp4", "--model", "model", "--json", "--top-k", "3"],
        0,
        [
            "hf-i3d predict: warning: short.mp4 has 3 frames, fewer than a clip spans (8 frames 2 apart: 15); its "
            "frames were repeated (looped) to fill the clip, so the scores are less reliable"
        ],
        _json_looped,
    ),
    Row(
        "predict-small-h264-falls-back-to-pyav-once",
        ["predict", "tiny16.mp4", "tiny16.mp4", "--model", "model", "--json", "--top-k", "3", "--backend", "decord"],
        0,
        [FALLBACK.format(video="tiny16.mp4")],
        _predicted(2),
    ),
    Row(
        "predict-gif",
        ["predict", "clip.gif", "--model", "model", "--json", "--top-k", "3", "--backend", "decord"],
        0,
        [
            "hf_i3d: decord cannot read clip.gif (it fails to open it: [clip.gif] Failed to measure "
            "duration/frame-count due to broken metadata.); decoding it with PyAV instead (said once; later files "
            "that decord cannot read are decoded with PyAV too)"
        ],
        _predicted(1),
    ),
    Row(
        "predict-non-utf8-file-name",
        ["predict", NON_UTF8, "--model", "model", "--json", "--top-k", "3", "--backend", "decord"],
        0,
        [
            "hf_i3d: decord cannot read caf\\xe9.mp4 (its name is not valid UTF-8); decoding it with PyAV instead "
            "(said once; later files that decord cannot read are decoded with PyAV too)"
        ],
        _predicted(1),
    ),
    Row(
        "predict-resolution-change-decord",
        ["predict", "change.ts", "--model", "model", "--backend", "decord"],
        1,
        [
            "hf-i3d predict: error: change.ts: the frame size changes mid-video (64x48, then 32x24); re-encode it "
            "at one size (e.g. ffmpeg -i IN -vf scale=64:48 OUT)"
        ],
    ),
    Row(
        "predict-resolution-change-pyav",
        ["predict", "change.ts", "--model", "model", "--backend", "pyav"],
        1,
        [
            "hf-i3d predict: error: change.ts: the frame size changes mid-video (64x48, frame 10 is 32x24); "
            "re-encode it at one size (e.g. ffmpeg -i IN -vf scale=64:48 OUT)"
        ],
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input(row: Row, world: Path, monkeypatch, capsys):
    monkeypatch.chdir(world)
    monkeypatch.setattr(decoding, "_FALLBACK_SAID", [])  # "said once" per process: once per row here
    try:
        code = cli_main(row.argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    captured = capsys.readouterr()
    progress = re.compile(r"^[\w ]+: +\d+%\|")  # transformers' tqdm bars (e.g. "Writing model shards")
    lines = [line for line in captured.err.splitlines() if line.strip() and not progress.match(line)]
    expected = [line.format(w=world) for line in row.err]
    assert (code, lines) == (row.code, expected)  # argparse's errors too: one line, no usage text before it
    assert "Traceback" not in captured.err
    if row.check is not None:
        row.check(world, captured.out)


def test_debug_shows_the_traceback(world, monkeypatch):
    monkeypatch.chdir(world)
    from hf_i3d.predict import ModelLoadError

    with pytest.raises(ModelLoadError, match="empty is not a model folder: it is empty"):
        cli_main(["predict", "ok.mp4", "--model", "empty", "--debug"])


def test_zoo_name_typo_fails_before_any_network_call(monkeypatch):
    import socket

    from hf_i3d.hub import UnknownModelError, resolve_model

    def no_network(*args, **kwargs):
        raise AssertionError("a network call was made")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(UnknownModelError, match=r"did you mean i3d-inception-kinetics400\?$"):
        resolve_model("i3d-inceptoin-kinetics400")
    assert resolve_model("someone/some-model") == "someone/some-model"  # Hub ids pass through untouched
    with pytest.raises(UnknownModelError, match=r"did you mean i3d-r50-kinetics400\?$"):
        I3DForVideoClassification.from_pretrained("i3d-r50-kinetcs400")  # the classes' zoo-name resolver


def test_missing_opencv_is_one_line(world, monkeypatch, capsys):
    monkeypatch.chdir(world)
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail
    assert cli_main(["predict", "ok.mp4", "--model", "model"]) == 1
    progress = re.compile(r"^[\w ]+: +\d+%\|")  # transformers' tqdm bars
    assert [x for x in capsys.readouterr().err.splitlines() if x.strip() and not progress.match(x)] == [
        "hf-i3d predict: error: hf_i3d's mmaction2 frame arithmetic needs the 'opencv-python-headless' package: "
        'pip install "hf_i3d[video]" (or pip install opencv-python-headless)'
    ]


# --- conversions killed at any moment ----------------------------------------------------------------------------


class FakeModel:
    """Stands in for a model in ``save_converted``: ``save_pretrained`` writes ``config.json`` and a weights file
    holding ``version``, calling ``step()`` between the two (a kill mid-write)."""

    base_model_prefix = ""

    class Config:
        @classmethod
        def register_for_auto_class(cls, *args) -> None:
            pass

    def __init__(self, version: str, step=lambda: None) -> None:
        self.config, self.version, self.step = self.Config(), version, step

    @classmethod
    def register_for_auto_class(cls, *args) -> None:
        pass

    def save_pretrained(self, folder) -> None:
        (Path(folder) / "config.json").write_text("{}")
        self.step()
        (Path(folder) / "model.safetensors").write_text(self.version)


def _convert_and_die_at(step: int, output: Path, exchange: bool) -> int:
    """Fork; the child replaces ``output`` and SIGKILLs itself at the ``step``-th file-system step of
    ``save_converted`` (its wrapped calls); returns the child's wait status (0: it finished first)."""
    import types

    import hf_i3d.convert as convert

    pid = os.fork()
    if pid:
        return os.waitpid(pid, 0)[1]
    try:  # the child: no torch work, only file operations
        calls = [0]

        def counted(function):
            def wrapped(*args, **kwargs):
                calls[0] += 1
                if calls[0] == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return function(*args, **kwargs)

            return wrapped

        convert.os = types.SimpleNamespace(**{**vars(os), "replace": counted(os.replace)})
        convert.shutil = types.SimpleNamespace(**{**vars(shutil), "rmtree": counted(shutil.rmtree)})
        convert._exchange = counted(convert._exchange if exchange else lambda first, second: False)
        convert._apply_umask = counted(convert._apply_umask)
        convert.save_converted(FakeModel("new", step=counted(lambda: None)), output, overwrite=True)
    finally:
        os._exit(0)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_conversion_killed_at_any_step_leaves_the_previous_output(tmp_path, exchange):
    """SIGKILL at each file-system step of an --overwrite conversion (mid-write, after the write, at the swap, at
    the clean-up): the output path always holds a complete model folder, the old or the new one (or, between the
    two renames of the fallback, the old one waits beside it), and the next run puts it back and sweeps every
    leftover. Nothing beside the output is touched."""
    from hf_i3d.convert import save_converted

    output = tmp_path / "model"
    (tmp_path / "mine.txt").write_text("mine")
    save_converted(FakeModel("old"), output)
    killed = 0
    for step in range(1, 12):
        if _convert_and_die_at(step, output, exchange) == 0:
            break
        killed += 1
        folder = output
        # killed between the two renames of the fallback: the old folder waits beside it
        if not output.exists():
            [folder] = [p for p in tmp_path.iterdir() if p.name.startswith(".model.old-")]
        assert (folder / "config.json").is_file()
        assert (folder / "model.safetensors").read_text() in ("old", "new")
        save_converted(FakeModel("old"), output, overwrite=True)  # the next run: sweeps, puts back, replaces
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt", "model"]
        assert (output / "model.safetensors").read_text() == "old"
    assert killed == (4 if exchange else 7)  # every step of the path was hit before it ran to the end
    assert (output / "model.safetensors").read_text() == "new"


def test_converted_folders_follow_the_umask(world):
    previous = os.umask(0o027)
    try:
        output = world / "umask"
        assert cli_main(convert_argv(str(world / "ckpts/small.pth"), str(output))) == 0
    finally:
        os.umask(previous)
    assert output.stat().st_mode & 0o777 == 0o750
    assert (output / "model.safetensors").stat().st_mode & 0o777 == 0o640
    assert (output / "config.json").stat().st_mode & 0o777 == 0o640


# --- annotation lists and label files ----------------------------------------------------------------------------


@dataclass
class DataRow:
    """A list (and label file) as bytes, and what loading them must give: the exact error (``{d}`` is the folder),
    or with ``error=None`` the paths and labels read and the exact warning logged."""

    id: str
    files: dict[str, bytes]
    error: str | None
    modality: str = "video"
    read: list[tuple[str, int]] | None = None
    warning: str | None = None


LABELS_3 = b"up\ndown\nleft\n"
DATA_ROWS = [
    DataRow(
        "list-with-bom-is-read",
        {"list.txt": "\ufeffa.mp4 0\nb.mp4 2\n".encode(), "labels.txt": LABELS_3},
        None,
        read=[("a.mp4", 0), ("b.mp4", 2)],
    ),
    DataRow(
        "latin1-list",
        {"list.txt": "a.mp4 0\ncaf\xe9.mp4 1\n".encode("latin-1"), "labels.txt": LABELS_3},
        "{d}/list.txt:2: not UTF-8 text (byte 0xe9); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
    ),
    DataRow(
        "latin1-label-file",
        {"list.txt": b"a.mp4 0\n", "labels.txt": "up\ndown\ncaf\xe9\n".encode("latin-1")},
        "{d}/labels.txt:3: not UTF-8 text (byte 0xe9); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
    ),
    DataRow(
        "classind-with-a-gap",
        {"list.txt": b"a.mp4 0\n", "labels.txt": b"1 up\n2 down\n4 left\n"},
        "{d}/labels.txt: class ids must run 1..3 without gaps (classInd.txt 'id name' lines); id 3 is missing",
    ),
    DataRow(
        "classind-repeated-id",
        {"list.txt": b"a.mp4 0\n", "labels.txt": b"1 up\n2 down\n2 left\n"},
        "{d}/labels.txt:3: class id 2 repeats line 2",
    ),
    DataRow(
        "one-based-list",
        {"list.txt": b"a.mp4 1\nb.mp4 2\nc.mp4 3\n", "labels.txt": b"1 up\n2 down\n3 left\n"},
        "{d}/list.txt:3: labels run 1..3 but there are 3 label names (labels 0..2): the lists look 1-based; "
        "subtract 1 from every label (mmaction2 lists are 0-based)",
    ),
    DataRow(
        "rawframes-list-loaded-as-video",
        {"list.txt": b"a 120 0\nb 90 2\n", "labels.txt": LABELS_3},
        "{d}/list.txt:1: expected 'path label', got 3 fields 'a 120 0' (a rawframes list 'frame_dir total_frames "
        "label'? load it with modality='rawframes'; only a multi-label list takes multi_label=True)",
    ),
    DataRow(
        "path-with-spaces",
        {"list.txt": b"my video.mp4 1\n", "labels.txt": LABELS_3},
        "{d}/list.txt:1: expected 'path label', got 3 fields 'my video.mp4 1' (a path with spaces? list paths "
        "cannot contain spaces)",
    ),
    DataRow(
        "one-path-two-labels",
        {"list.txt": b"a.mp4 0\nb.mp4 1\na.mp4 2\n", "labels.txt": LABELS_3},
        "{d}/list.txt:3: a.mp4 is listed again with other values ('a.mp4 2'; line 1 has a.mp4 0): keep one of the "
        "two lines",
    ),
    DataRow(
        "exact-duplicate-lines",
        {"list.txt": b"a.mp4 0\nb.mp4 1\na.mp4 0\nb.mp4 1\n", "labels.txt": LABELS_3},
        None,
        read=[("a.mp4", 0), ("b.mp4", 1)],
        warning="{d}/list.txt: 2 exact duplicate line(s) ignored: lines 3 (= line 1), 4 (= line 2)",
    ),
]


@pytest.mark.parametrize("row", DATA_ROWS, ids=[row.id for row in DATA_ROWS])
def test_bad_data_file(row: DataRow, tmp_path, caplog):
    import logging

    from hf_i3d.data import AnnotationError, load_video_dataset

    for name, content in row.files.items():
        (tmp_path / name).write_bytes(content)
    load = lambda: load_video_dataset(  # noqa: E731
        tmp_path, {"train": tmp_path / "list.txt"}, row.modality, tmp_path / "labels.txt"
    )
    if row.error is not None:
        with pytest.raises(AnnotationError) as error:
            load()
        assert str(error.value) == row.error.format(d=tmp_path)
        return
    with caplog.at_level(logging.WARNING, logger="hf_i3d.data"):
        train = load()["train"]
    assert [(Path(p).name, label) for p, label in zip(train["path"], train["label"])] == row.read
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ([row.warning.format(d=tmp_path)] if row.warning else [])


# --- the example training script ---------------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run_video_classification.py"
SCRIPT = "run_video_classification.py: error: "
TINY = ["--config_overrides", "depth=18", "base_channels=4", "num_stages=1", "inflate=1", "with_pool2=False"]
TINY += [
    "--modality",
    "video",
    "--clip_len",
    "4",
    "--frame_interval",
    "1",
    "--num_clips",
    "1",
    "--num_crops",
    "1",
]
TINY += [
    "--short_side",
    "32",
    "--crop_size",
    "32",
    "--test_crop_size",
    "32",
    "--use_cpu",
    "--output_dir",
    "out",
]
KNOWN = f"Known names: {', '.join(sorted(ZOO))}"


@pytest.fixture(scope="module")
def example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_video_classification", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lists(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lists")
    write_video(root / "a.mp4", 12)
    write_video(root / "b.mp4", 12)
    (root / "garbage.mp4").write_bytes(b"not a video\n" * 50)
    (root / "labels.txt").write_text("up\ndown\nleft\n")
    (root / "good.txt").write_text("a.mp4 0\nb.mp4 1\n")
    (root / "bad-label.txt").write_text("a.mp4 0\nb.mp4 7\n")
    (root / "bad-video.txt").write_text("a.mp4 0\ngarbage.mp4 1\nb.mp4 2\n")
    (root / "empty.txt").write_text("\n")
    return root


PREDICT = ["--do_predict", "--label_file", "labels.txt", *TINY]
EXAMPLE_ROWS = [
    (
        "missing-list",
        ["--test_ann_file", "missing.txt", *PREDICT],
        1,
        f"{SCRIPT}annotation list missing.txt does not exist",
    ),
    (
        "missing-label-file",
        ["--test_ann_file", "good.txt", *PREDICT, "--label_file", "nolabels.txt"],
        1,
        f"{SCRIPT}label names file nolabels.txt does not exist",
    ),
    (
        "label-out-of-range",
        ["--test_ann_file", "bad-label.txt", *PREDICT],
        1,
        SCRIPT + "{d}/bad-label.txt:2: label 7 is outside the label set 0..2 (3 label names)",
    ),
    (
        "empty-list",
        ["--test_ann_file", "empty.txt", *PREDICT],
        1,
        f"{SCRIPT}empty.txt: the test list holds no lines",
    ),
    (
        "unknown-preset",
        ["--preset", "i3d-r18", "--test_ann_file", "good.txt", *PREDICT],
        1,
        f"{SCRIPT}Unknown zoo name 'i3d-r18'. {KNOWN}",
    ),
    (
        "batch-size-zero",
        ["--test_ann_file", "good.txt", *PREDICT, "--per_device_eval_batch_size", "0"],
        2,
        f"{SCRIPT}--per_device_eval_batch_size must be at least 1, got 0",
    ),
    (
        "misspelled-argument",
        ["--test_ann_file", "good.txt", *PREDICT, "--lerning_rate", "0.1"],
        2,
        f"{SCRIPT}unknown argument --lerning_rate; did you mean --learning_rate?",
    ),
    (
        "do-eval-without-validation-list",
        ["--do_eval", *TINY],
        2,
        f"{SCRIPT}--do_eval needs --validation_ann_file",
    ),
    (
        "do-train-without-validation-list-names-the-train-list",  # not --do_eval, which was not given
        ["--do_train", "--train_ann_file", "missing-train.txt", *TINY],
        1,
        f"{SCRIPT}annotation list missing-train.txt does not exist",
    ),
    (
        "bad-video-raises-by-default",
        ["--test_ann_file", "bad-video.txt", *PREDICT],
        1,
        SCRIPT + "{d}/bad-video.txt:2: {d}/garbage.mp4: is not a readable video (Invalid data found when "
        "processing input)",
    ),
]


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["--num_train_epochs", "abc"],
            "argument --num_train_epochs/--num-train-epochs: invalid float value: 'abc'",
        ),
        (
            ["--optimize_cpu_training", "maybe"],
            "argument --optimize_cpu_training/--optimize-cpu-training: Truthy value",
        ),
        (["--learning_rate"], "argument --learning_rate/--learning-rate: expected one argument"),
    ],
    ids=["not-a-number", "not-a-boolean", "missing-value"],
)
def test_example_script_bad_value_is_one_line(example, argv, line, capsys):
    """argparse's own errors: one line naming the argument, exit 2, without argparse's usage text before it."""
    assert example.run(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"{SCRIPT}{line}") and err[0].endswith(" (see --help)"), err


@pytest.mark.parametrize("argv, code, line", [r[1:] for r in EXAMPLE_ROWS], ids=[r[0] for r in EXAMPLE_ROWS])
def test_example_script_mistake(example, lists, argv, code, line, monkeypatch, capsys):
    monkeypatch.chdir(lists)
    assert example.run(argv) == code
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith(SCRIPT) or "Traceback" in x]
    assert err == [line.format(d=lists)]


def test_example_script_skips_bad_videos_and_counts_them(example, lists, monkeypatch, caplog):
    import logging

    monkeypatch.chdir(lists)
    with caplog.at_level(logging.WARNING):
        results = example.main(["--test_ann_file", "bad-video.txt", *PREDICT, "--on_bad_video", "skip"])
    assert results["bad_videos_replaced"] == 1
    assert (
        "--on_bad_video skip: 1 unreadable video(s) replaced by others of their list (test 1); the lines are named "
        "in the warnings above" in caplog.text
    )
