"""hf_i3d.metrics: mmaction2's top-k and mean class accuracy, as numpy and as offline `evaluate` modules.

Golden values are those of mmaction2 ``tests/test_accuracy.py`` (v0.5.0): ``test_top_k_accurate`` and
``test_mean_class_accuracy`` on the same 4 x 5 score matrix (argmax per row: 2, 2, 2, 4).
"""

import ast
import json
import os
import re
import subprocess
import sys

import evaluate
import numpy as np
import pytest
from transformers.trainer_utils import EvalPrediction

from hf_i3d.metrics import (
    METRIC_NAMES,
    build_compute_metrics,
    compute_video_metrics,
    confusion_matrix,
    load_metric,
    mean_class_accuracy,
    metric_path,
    top_k_accuracy,
)

SCORES = [
    [-0.2203, -0.7538, 1.8789, 0.4451, -0.2526],
    [-0.0413, 0.6366, 1.1155, 0.3484, 0.0395],
    [0.0365, 0.5158, 1.1067, -0.9276, -0.2124],
    [0.6232, 0.9912, -0.8562, 0.0148, 1.6413],
]
# (labels, topk, expected) from mmaction2 tests/test_accuracy.py::test_top_k_accurate
TOPK_CASES = [
    ([2, 0, 4, 3], (1,), [0.25]),
    ([2, 2, 2, 4], (1,), [1.0]),
    ([3, 1, 2, 3], (1, 2), [0.25, 0.75]),
    ([2, 3, 0, 2], (1, 3, 5), [0.25, 0.75, 1.0]),
]
# (labels, expected) from mmaction2 tests/test_accuracy.py::test_mean_class_accuracy.
# [2, 2, 2, 3]: classes {2, 3, 4} score 1, 0 and 0 (4 is only predicted, never true) -> 1/3.
MEAN_CLASS_CASES = [
    ([1, 4, 0, 2], 0.0),
    ([2, 0, 4, 3], 0.25),
    ([2, 2, 2, 3], 1 / 3),
    ([4, 2, 2, 4], 0.75),
    ([2, 2, 2, 4], 1.0),
]


@pytest.mark.parametrize(("labels", "topk", "expected"), TOPK_CASES)
def test_top_k_accuracy_golden(labels, topk, expected):
    assert top_k_accuracy(np.array(SCORES), np.array(labels), topk) == pytest.approx(expected, abs=1e-12)


def test_top_k_accuracy_int_k_returns_float():
    result = top_k_accuracy(SCORES, [3, 1, 2, 3], 2)
    assert isinstance(result, float) and result == 0.75


@pytest.mark.parametrize(("labels", "expected"), MEAN_CLASS_CASES)
def test_mean_class_accuracy_golden(labels, expected):
    assert mean_class_accuracy(np.array(SCORES), np.array(labels)) == pytest.approx(expected, abs=1e-12)


def _brute_confusion(pred, real):
    classes = sorted(set(pred) | set(real))
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for p, r in zip(pred, real):
        matrix[classes.index(r), classes.index(p)] += 1
    return classes, matrix


def test_against_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    for trial in range(20):
        num_classes = int(rng.integers(2, 12))
        num_samples = int(rng.integers(1, 60))
        scores = rng.normal(size=(num_samples, num_classes))  # continuous: no ties
        # labels from a random subset, so some classes are predicted-only and some never occur
        subset = rng.choice(num_classes, size=int(rng.integers(1, num_classes + 1)), replace=False)
        labels = rng.choice(subset, size=num_samples)
        pred = scores.argmax(axis=1)

        classes, brute = _brute_confusion(pred.tolist(), labels.tolist())
        np.testing.assert_array_equal(confusion_matrix(pred, labels), brute, err_msg=f"trial {trial}")
        per_class = [brute[i, i] / brute[i].sum() if brute[i].sum() else 0.0 for i in range(len(classes))]
        assert mean_class_accuracy(scores, labels) == pytest.approx(np.mean(per_class), abs=1e-12)

        ks = list(range(1, num_classes + 1))
        brute_topk = [
            np.mean(
                [
                    labels[i] in sorted(range(num_classes), key=lambda c, i=i: -scores[i, c])[:k]
                    for i in range(num_samples)
                ]
            )
            for k in ks
        ]
        assert top_k_accuracy(scores, labels, ks) == pytest.approx(brute_topk, abs=1e-12)


def test_compute_video_metrics_keys_and_values():
    assert compute_video_metrics(SCORES, [2, 2, 2, 3]) == pytest.approx(
        {"top1_acc": 0.75, "top5_acc": 1.0, "mean_class_accuracy": 1 / 3}, abs=1e-12
    )
    assert compute_video_metrics(SCORES, [3, 1, 2, 3], topk=(1, 2)) == pytest.approx(
        {"top1_acc": 0.25, "top2_acc": 0.75, "mean_class_accuracy": 0.25}, abs=1e-12
    )


def test_build_compute_metrics_on_eval_prediction():
    compute_metrics = build_compute_metrics()
    logits = np.array(SCORES, dtype=np.float32)
    labels = np.array([2, 2, 2, 3], dtype=np.int64)
    expected = {"top1_acc": 0.75, "top5_acc": 1.0, "mean_class_accuracy": 1 / 3}
    assert compute_metrics(EvalPrediction(predictions=logits, label_ids=labels)) == pytest.approx(expected)
    # models that also return hidden states give a tuple whose first item is the logits
    hidden = np.zeros((4, 8), dtype=np.float32)
    assert compute_metrics(EvalPrediction(predictions=(logits, hidden), label_ids=labels)) == pytest.approx(
        expected
    )
    assert build_compute_metrics(topk=(1, 3))(
        EvalPrediction(logits, np.array([2, 3, 0, 2]))
    ) == pytest.approx({"top1_acc": 0.25, "top3_acc": 0.75, "mean_class_accuracy": 0.125})


@pytest.mark.parametrize(
    ("scores", "labels", "topk", "message"),
    [
        (np.zeros(5), [0], (1,), "scores must be 2-D (N, K), got shape (5,)"),
        (np.zeros((2, 3)), [0, 1, 2], (1,), "labels has 3 entries but the scores have 2 rows"),
        (
            np.zeros((2, 3)),
            [[0], [1]],
            (1,),
            "labels must be a 1-D vector of class indices, got shape (2, 1)",
        ),
        (
            np.zeros((2, 3)),
            np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]),
            (1,),
            "labels must be a 1-D vector of class indices, got shape (2, 3); multi-label (N, K) label matrices "
            "are not supported by top_k_accuracy / mean_class_accuracy",
        ),
        (
            np.zeros((2, 3)),
            np.array([0.0, 1.0]),
            (1,),
            "labels must be integer class indices, got dtype float64; float 0/1 multi-label targets are not "
            "supported by top_k_accuracy / mean_class_accuracy",
        ),
        (
            np.zeros((2, 3)),
            [0, 3],
            (1,),
            "labels must be in [0, 3) (the number of score columns); got [3] at positions [1]",
        ),
        (
            np.zeros((2, 3)),
            [-100, 1],
            (1,),
            "labels must be in [0, 3) (the number of score columns); got [-100] at positions [0]",
        ),
        (
            np.zeros((2, 3)),
            [0, 1],
            (1, 5),
            "topk values must be integers in [1, 3] (the number of classes), got 5",
        ),
        (
            np.zeros((2, 3)),
            [0, 1],
            (0,),
            "topk values must be integers in [1, 3] (the number of classes), got 0",
        ),
        (np.array([[0.0, np.nan, 1.0], [0, 1, 2]]), [0, 1], (1,), "scores contain NaN in rows [0]"),
        (np.zeros((0, 3)), [], (1,), "scores must hold at least one sample and one class, got shape (0, 3)"),
    ],
)
def test_input_errors(scores, labels, topk, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        top_k_accuracy(scores, labels, topk)
    if "topk" not in message:
        with pytest.raises(ValueError, match=re.escape(message)):
            mean_class_accuracy(scores, labels)


def test_compute_metrics_reports_k_larger_than_classes():
    compute_metrics = build_compute_metrics(topk=(1, 5))
    with pytest.raises(
        ValueError, match=re.escape("topk values must be integers in [1, 3] (the number of classes), got 5")
    ):
        compute_metrics(EvalPrediction(predictions=np.zeros((2, 3)), label_ids=np.array([0, 1])))


def test_metric_files_are_self_contained():
    """evaluate copies each file alone into its cache, so it may import only libraries, never hf_i3d."""
    for name in METRIC_NAMES:
        tree = ast.parse(metric_path(name).read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}.py uses a relative import"
                imported.add(node.module.split(".")[0])
        assert imported <= {"__future__", "collections", "datasets", "evaluate", "numpy"}, (name, imported)


def test_load_metric_unknown_name():
    with pytest.raises(
        ValueError,
        match=re.escape("unknown metric 'accuracy'; known metrics: top_k_accuracy, mean_class_accuracy"),
    ):
        load_metric("accuracy")


@pytest.fixture
def isolated_evaluate_cache(tmp_path, monkeypatch):
    """Point this process's evaluate caches (read from HF_HOME at import) at a temporary folder."""
    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path / "modules")
    monkeypatch.setattr(evaluate.config, "HF_METRICS_CACHE", tmp_path / "metrics")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    # evaluate imports its copies as the package ``evaluate_modules`` found on sys.path; an earlier load in this
    # process (another test, another cache) must not answer for this cache's copies.
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    for name in [name for name in sys.modules if name.split(".")[0] == "evaluate_modules"]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def test_load_metric_in_process(isolated_evaluate_cache):
    top_k = load_metric("top_k_accuracy")
    assert isinstance(top_k, evaluate.EvaluationModule) and top_k.name == "top_k_accuracy"
    for labels, topk, expected in TOPK_CASES:
        result = top_k.compute(predictions=SCORES, references=labels, topk=topk)
        assert result == pytest.approx({f"top{k}_acc": v for k, v in zip(topk, expected)})
    # streaming batches gives the same as one call
    top_k.add_batch(predictions=SCORES[:2], references=[2, 2])
    top_k.add_batch(predictions=SCORES[2:], references=[2, 3])
    assert top_k.compute() == pytest.approx({"top1_acc": 0.75, "top5_acc": 1.0})
    for score, label in zip(SCORES, [2, 2, 2, 3]):
        top_k.add(prediction=score, reference=label)
    assert top_k.compute(topk=1) == {"top1_acc": 0.75}

    mean_class = load_metric("mean_class_accuracy")
    for labels, expected in MEAN_CLASS_CASES:
        assert mean_class.compute(predictions=SCORES, references=labels) == pytest.approx(
            {"mean_class_accuracy": expected}
        )
    assert (isolated_evaluate_cache / "modules" / "evaluate_modules" / "metrics").is_dir()


def test_evaluate_module_rejects_multi_label_with_clear_error(isolated_evaluate_cache):
    metric = load_metric("top_k_accuracy")
    with pytest.raises(
        ValueError, match=re.escape("references must be a 1-D vector of class indices, got shape (2, 3)")
    ):
        metric.compute(predictions=[[0.1, 0.2, 0.7]] * 2, references=[[0, 1, 1], [1, 0, 0]])
    with pytest.raises(
        ValueError, match=re.escape("references must be in [0, 3) (the number of score columns)")
    ):
        metric.compute(predictions=[[0.1, 0.2, 0.7]] * 2, references=[0, 7], topk=1)
    with pytest.raises(ValueError, match=re.escape("predictions must be 2-D (N, K), got shape (2,)")):
        metric.compute(predictions=[0.1, 0.2], references=[0, 1])


_OFFLINE_SCRIPT = """
import json, sys
import evaluate
paths, cases = json.loads(sys.argv[1]), json.loads(sys.argv[2])
top_k = evaluate.load(paths["top_k_accuracy"])
mean_class = evaluate.load(paths["mean_class_accuracy"])
out = {
    "top_k": [top_k.compute(predictions=cases["scores"], references=labels, topk=topk) for labels, topk in cases["topk"]],
    "mean_class": [mean_class.compute(predictions=cases["scores"], references=labels) for labels in cases["mean_class"]],
    "offline": evaluate.config.HF_EVALUATE_OFFLINE,
    "modules_cache": str(evaluate.config.HF_MODULES_CACHE),
}
print(json.dumps(out))
"""


def test_evaluate_load_offline_in_fresh_process(tmp_path):
    """``evaluate.load(<shipped file>)`` in a clean process with no Hub access and an empty HF_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_EVALUATE_OFFLINE="1", HF_HUB_OFFLINE="1")
    paths = {name: str(metric_path(name)) for name in METRIC_NAMES}
    cases = {
        "scores": SCORES,
        "topk": [[labels, list(topk)] for labels, topk, _ in TOPK_CASES],
        "mean_class": [labels for labels, _ in MEAN_CLASS_CASES],
    }
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, json.dumps(paths), json.dumps(cases)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["offline"] is True
    assert out["modules_cache"] == str(tmp_path / "hf_home" / "modules")
    for result, (_, topk, expected) in zip(out["top_k"], TOPK_CASES):
        assert result == pytest.approx({f"top{k}_acc": v for k, v in zip(topk, expected)})
    for result, (_, expected) in zip(out["mean_class"], MEAN_CLASS_CASES):
        assert result == pytest.approx({"mean_class_accuracy": expected})
    copied = list(
        (tmp_path / "hf_home" / "modules" / "evaluate_modules" / "metrics").rglob("top_k_accuracy.py")
    )
    assert len(copied) == 1 and copied[0].read_text() == metric_path("top_k_accuracy").read_text()
