"""hf_i3d.multiview: view batching and mmaction2 ``BaseHead.average_clip`` averaging ('prob', 'score', None)."""

import math
import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from hf_i3d import I3DConfig, I3DForVideoClassification
from hf_i3d.multiview import average_view_scores, predict_view_batches, predict_views

LN3, LN4 = math.log(3.0), math.log(4.0)
# Two videos x two views x two classes. softmax([0, ln 3]) = [1/4, 3/4], softmax([ln 4, 0]) = [4/5, 1/5],
# softmax([0, 0]) = [1/2, 1/2].
LOGITS = torch.tensor(
    [
        [[0.0, LN3], [0.0, 0.0]],
        [[LN4, 0.0], [0.0, 0.0]],
    ],
    dtype=torch.float64,
)


def test_prob_is_mean_of_softmax():
    expected = torch.tensor([[3 / 8, 5 / 8], [13 / 20, 7 / 20]], dtype=torch.float64)
    torch.testing.assert_close(average_view_scores(LOGITS, mode="prob"), expected)


def test_score_is_mean_of_logits():
    expected = torch.tensor([[0.0, LN3 / 2], [LN4 / 2, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(average_view_scores(LOGITS, mode="score"), expected)


def test_prob_and_score_can_rank_differently():
    """Why the averaging mode matters: one very confident view wins under 'score', agreement wins under 'prob'."""
    logits = torch.tensor([[[30.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 3.0]]])
    assert average_view_scores(logits, mode="score").argmax().item() == 0  # mean logits [10, 0, 2]
    assert average_view_scores(logits, mode="prob").argmax().item() == 2  # mean probs ~[0.364, 0.030, 0.606]


def test_none_returns_views_unaveraged():
    flat = LOGITS.reshape(4, 2)
    assert torch.equal(average_view_scores(flat, num_views=2, mode=None), LOGITS)
    assert torch.equal(average_view_scores(LOGITS, mode=None), LOGITS)


@pytest.mark.parametrize("mode", ["prob", "score", None])
def test_flat_and_grouped_inputs_agree(mode):
    """[B*V, K] rows b*V .. b*V+V-1 are the views of video b, as in mmaction2's reshape to [B, V, K]."""
    logits = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0))
    grouped = average_view_scores(logits, mode=mode)
    assert torch.equal(average_view_scores(logits.reshape(15, 7), num_views=5, mode=mode), grouped)
    assert torch.equal(average_view_scores(logits, num_views=5, mode=mode), grouped)


def test_multi_label_prob_uses_sigmoid():
    logits = torch.tensor([[[0.0, LN3]], [[-LN3, 0.0]]], dtype=torch.float64)
    expected = torch.tensor([[1 / 2, 3 / 4], [1 / 4, 1 / 2]], dtype=torch.float64)
    torch.testing.assert_close(average_view_scores(logits, mode="prob", multi_label=True), expected)


def test_half_precision_is_averaged_in_float32():
    out = average_view_scores(LOGITS.to(torch.bfloat16), mode="prob")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, average_view_scores(LOGITS.float(), mode="prob"), atol=1e-2, rtol=0)


@pytest.mark.parametrize(
    ("logits", "kwargs", "error", "message"),
    [
        (
            torch.zeros(6, 3),
            {},
            ValueError,
            "num_views is required for 2-D logits [B*V, K] (got shape (6, 3))",
        ),
        (
            torch.zeros(6, 3),
            {"num_views": 4},
            ValueError,
            "logits has 6 rows, which is not a multiple of num_views=4",
        ),
        (
            torch.zeros(2, 3, 4),
            {"num_views": 2},
            ValueError,
            "logits has shape (2, 3, 4) = [B, V, K] with V=3, but num_views=2",
        ),
        (torch.zeros(2, 3), {"num_views": 0}, ValueError, "num_views must be a positive int or None, got 0"),
        (
            torch.zeros(2, 3, 4, 5),
            {},
            ValueError,
            "logits must be [B*V, K] or [B, V, K], got shape (2, 3, 4, 5)",
        ),
        (
            torch.zeros(2, 3, 4),
            {"mode": "mean"},
            ValueError,
            "mode must be one of 'prob', 'score' or None, got 'mean'",
        ),
        (
            torch.zeros(2, 3, 4, dtype=torch.long),
            {},
            TypeError,
            "logits must be a floating-point tensor, got dtype torch.int64",
        ),
        ([[0.0, 1.0]], {"num_views": 1}, TypeError, "logits must be a torch.Tensor, got list"),
    ],
)
def test_average_view_scores_errors(logits, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        average_view_scores(logits, **kwargs)


class DummyClassifier(nn.Module):
    """Linear classifier over flattened (T, C, H, W) views that records how it was called."""

    def __init__(self, in_features: int, num_classes: int, config=None):
        super().__init__()
        self.proj = nn.Linear(in_features, num_classes)
        self.config = config
        self.calls = []

    def forward(self, pixel_values):
        self.calls.append(
            {
                "batch": pixel_values.shape[0],
                "training": self.training,
                "inference_mode": torch.is_inference_mode_enabled(),
                "dtype": pixel_values.dtype,
            }
        )
        return ImageClassifierOutputWithNoAttention(logits=self.proj(pixel_values.flatten(1)))


def _views(batch=2, views=3, seed=0):
    return torch.randn(batch, views, 4, 3, 5, 5, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("average", ["prob", "score", None])
def test_predict_views_chunking_matches_one_batch(average):
    torch.manual_seed(0)
    model = DummyClassifier(4 * 3 * 5 * 5, 6)
    pixel_values = _views()
    whole = predict_views(model, pixel_values, average=average)
    with torch.no_grad():
        reference = average_view_scores(
            model(pixel_values=pixel_values.flatten(0, 1)).logits, num_views=3, mode=average
        )
    torch.testing.assert_close(whole, reference)
    for chunk in (1, 2, 4, 6, 100):
        model.calls.clear()
        torch.testing.assert_close(
            predict_views(model, pixel_values, max_views_per_batch=chunk, average=average), whole
        )
        sizes = [call["batch"] for call in model.calls]
        assert (
            sum(sizes) == 6
            and max(sizes) <= chunk
            and sizes == [min(chunk, 6 - i) for i in range(0, 6, chunk)]
        )
    assert whole.shape == ((2, 3, 6) if average is None else (2, 6))


def test_predict_views_single_view_input_and_modes():
    torch.manual_seed(0)
    model = DummyClassifier(4 * 3 * 5 * 5, 6)
    clips = _views(views=1)[:, 0]  # (B, T, C, H, W)
    with torch.no_grad():
        logits = model(pixel_values=clips).logits
    torch.testing.assert_close(predict_views(model, clips), torch.softmax(logits, dim=1))
    torch.testing.assert_close(predict_views(model, clips, average="score"), logits)


def test_predict_views_runs_in_eval_and_inference_mode_and_restores_training():
    model = DummyClassifier(4 * 3 * 5 * 5, 6).double()
    model.train()
    predict_views(model, _views(), max_views_per_batch=4)
    assert model.training
    assert all(not c["training"] and c["inference_mode"] for c in model.calls)
    assert all(c["dtype"] == torch.float64 for c in model.calls)  # float32 views cast to the model's dtype
    model.eval()
    predict_views(model, _views())
    assert not model.training


def test_predict_views_multi_label_from_config():
    torch.manual_seed(0)
    config = SimpleNamespace(problem_type="multi_label_classification")
    model = DummyClassifier(4 * 3 * 5 * 5, 6, config=config)
    pixel_values = _views()
    with torch.no_grad():
        logits = model(pixel_values=pixel_values.flatten(0, 1)).logits.reshape(2, 3, 6)
    torch.testing.assert_close(predict_views(model, pixel_values), torch.sigmoid(logits).mean(dim=1))
    torch.testing.assert_close(
        predict_views(model, pixel_values, multi_label=False), torch.softmax(logits, 2).mean(1)
    )


def test_predict_views_with_tiny_i3d():
    """A real HF classifier in train mode (dropout 0.5, BatchNorm batch stats): chunks still agree exactly."""
    torch.manual_seed(0)
    model = I3DForVideoClassification(I3DConfig(depth=18, base_channels=4, num_labels=5, inflate=1))
    pixel_values = torch.randn(2, 3, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    whole = predict_views(model, pixel_values)
    torch.testing.assert_close(predict_views(model, pixel_values, max_views_per_batch=2), whole)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(pixel_values=pixel_values.flatten(0, 1)).logits
    torch.testing.assert_close(whole, torch.softmax(logits.reshape(2, 3, 5), dim=2).mean(dim=1))


class NoLogits(nn.Module):
    def forward(self, pixel_values):
        return pixel_values.flatten(1)[:, :3]


class WrongBatch(nn.Module):
    def forward(self, pixel_values):
        return SimpleNamespace(logits=torch.zeros(1, 3))


@pytest.mark.parametrize(
    ("model", "pixel_values", "kwargs", "error", "message"),
    [
        (
            NoLogits(),
            torch.zeros(1, 2, 4, 3, 5, 5),
            {},
            TypeError,
            "model output Tensor has no tensor .logits; predict_views needs a classifier returning a ModelOutput",
        ),
        (
            WrongBatch(),
            torch.zeros(1, 2, 4, 3, 5, 5),
            {},
            ValueError,
            "model returned logits of shape (1, 3) for 2 views; expected (views, num_classes)",
        ),
        (
            NoLogits(),
            torch.zeros(4, 3, 5, 5),
            {},
            ValueError,
            "pixel_values must be (B, V, T, C, H, W) or (B, T, C, H, W) for one view, got shape (4, 3, 5, 5)",
        ),
        (
            NoLogits(),
            torch.zeros(1, 2, 4, 3, 5, 5),
            {"max_views_per_batch": 0},
            ValueError,
            "max_views_per_batch must be a positive int or None, got 0",
        ),
        (
            NoLogits(),
            torch.zeros(1, 2, 4, 3, 5, 5),
            {"average": "max"},
            ValueError,
            "average must be one of 'prob', 'score' or None, got 'max'",
        ),
        (NoLogits(), [[0.0]], {}, TypeError, "pixel_values must be a torch.Tensor, got list"),
    ],
)
def test_predict_views_errors(model, pixel_values, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        predict_views(model, pixel_values, **kwargs)


def test_predict_view_batches_puts_views_back_in_order():
    # Views arriving out of order and in uneven batches give the scores of predict_views on the whole tensor.
    torch.manual_seed(0)
    model = DummyClassifier(4 * 3 * 5 * 5, 6)
    pixel_values = _views()  # (2, 3, ...): 6 views
    views = pixel_values.flatten(0, 1)
    order = [[4, 0], [5], [3, 1, 2]]
    batches = ((index, views[index]) for index in order)
    for average in ("prob", "score", None):
        batches = ((index, views[index]) for index in order)
        torch.testing.assert_close(
            predict_view_batches(model, batches, 6, num_views=3, average=average),
            predict_views(model, pixel_values, average=average),
        )


@pytest.mark.parametrize(
    "order, message",
    [
        ([[0, 1], [1, 2]], "views [1] came twice"),
        ([[0, 1], [2]], "views [3] of 4 never came"),
        ([[0, 4], [1, 2]], "a batch of 2 views came with view indices [0, 4] (expected 2 indices in 0..3)"),
        ([], "views [0, 1, 2, 3] of 4 never came"),
    ],
)
def test_predict_view_batches_errors(order, message):
    model = DummyClassifier(4 * 3 * 5 * 5, 6)
    views = _views(batch=1, views=4).flatten(0, 1)
    batches = ((index, views[[i % 4 for i in index]]) for index in order)
    with pytest.raises(ValueError, match=re.escape(message)):
        predict_view_batches(model, batches, 4, num_views=4)
