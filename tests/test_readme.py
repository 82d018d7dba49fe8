"""The README's commands are the ones CI and users run."""

import configparser
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    command = ci_lines[-1]
    assert command in readme, "README.md and .ci/run disagree on the test command"
    assert "pip install -q -e \".[test]\"" in command and "python -m pytest" in command


def test_readme_main_job_installs_from_the_project_and_predicts():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    main_job = blocks[0]
    assert 'pip install -e ".[demo]" && hf-i3d predict' in main_job
    # everything it installs comes from the project's own files (the torch pair aside)
    installs = re.findall(r"pip install ([^&]*)", main_job)
    assert [part.strip() for part in installs] == ["torch==2.14.1 torchvision==0.29.1", '-e ".[demo]"']
    extras = configparser.RawConfigParser()
    extras.read(ROOT / "setup.cfg")
    demo = extras["options.extras_require"]["demo"].split()
    assert demo == ["%(video)s", "scikit-video"]


def _readme_commands() -> list[list[str]]:
    """Every command of the README's bash blocks as tokens: continuation lines joined, comments and ``&&`` chains
    split off."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)\n```", readme, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            for command in filter(None, (part.strip() for part in line.split("&&"))):
                commands.append(shlex.split(command))
    return commands


def _example_parser():
    from transformers import HfArgumentParser, TrainingArguments

    spec = importlib.util.spec_from_file_location("readme_example", ROOT / "examples" / "run_video_classification.py")
    example = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # (dataclasses look it up)
    spec.loader.exec_module(example)
    classes = (
        example.ModelArguments,
        example.DataArguments,
        example.RecipeArguments,
        TrainingArguments,
        example.DatasetsArguments,
    )
    return example, HfArgumentParser(classes)


def _flags(tokens: list[str]) -> list[str]:
    return [token.split("=", 1)[0] for token in tokens if token.startswith("--")]


def test_every_flag_the_readme_shows_exists():
    """Each ``--flag`` of a README command is one its program accepts: the example script (its own check of argument
    names), ``hf-i3d`` subcommands, ``accelerate launch`` and the ``hf`` CLI."""
    from accelerate.commands.launch import launch_command_parser

    from hf_i3d.cli import build_parser

    example, parser = _example_parser()
    cli = build_parser()
    accelerate = launch_command_parser()
    accelerate_known = {option for action in accelerate._actions for option in action.option_strings}
    hf_help: dict[str, str] = {}
    seen = set()
    for tokens in _readme_commands():
        if "examples/run_video_classification.py" in tokens:
            at = tokens.index("examples/run_video_classification.py")
            if tokens[0] == "accelerate":
                unknown = set(_flags(tokens[2:at])) - accelerate_known
                assert not unknown, f"accelerate launch has no {sorted(unknown)}: {' '.join(tokens)}"
            argv = [token for token in tokens[at + 1 :] if not token.startswith("...")]
            example._check_argument_names(parser, argv)  # raises UsageError naming an unknown flag
            seen.add("example")
        elif tokens[0] == "hf-i3d":
            subcommand = cli._subparsers._group_actions[0].choices[tokens[1]]
            if tokens[1] == "convert":
                subcommand = subcommand._subparsers._group_actions[0].choices[tokens[2]]
            known = {option for action in subcommand._actions for option in action.option_strings}
            unknown = set(_flags(tokens)) - known
            assert not unknown, f"hf-i3d {tokens[1]} has no {sorted(unknown)}: {' '.join(tokens)}"
            seen.add("hf-i3d")
        elif tokens[0] == "hf":
            if tokens[1] not in hf_help:
                hf = Path(sys.executable).parent / "hf"
                hf_help[tokens[1]] = subprocess.run(
                    [str(hf), tokens[1], "--help"], capture_output=True, text=True, check=True
                ).stdout
            for flag in _flags(tokens):
                assert re.search(rf"{re.escape(flag)}\b", hf_help[tokens[1]]), f"hf {tokens[1]} has no {flag}"
            seen.add("hf")
    assert seen == {"example", "hf-i3d", "hf"}


def test_readme_walks_the_video_classification_guide_with_an_i3d():
    """The transformers guide's path: a videofolder of UCF101-style class folders -> fine-tune
    i3d-inception-kinetics400 -> evaluate -> push to the Hub, one command each."""
    runs = [tokens for tokens in _readme_commands() if "examples/run_video_classification.py" in tokens]
    guide = [tokens for tokens in runs if "--train_dir" in tokens or "--test_dir" in tokens]
    assert len(guide) == 3, guide

    def value(tokens: list[str], flag: str) -> str:
        return tokens[tokens.index(flag) + 1]

    train, evaluate, push = guide
    assert value(train, "--model_name_or_path") == "i3d-inception-kinetics400"
    assert {"--do_train", "--train_dir", "--validation_dir"} <= set(train)
    trained = value(train, "--output_dir")
    assert value(evaluate, "--model_name_or_path") == trained and "--do_predict" in evaluate
    assert value(push, "--model_name_or_path") == trained and {"--push_to_hub", "--hub_model_id"} <= set(push)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "UCF101_subset/{train,val,test}/<class>/<video>.avi" in readme
