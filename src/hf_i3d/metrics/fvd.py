"""Fréchet Video Distance as an offline `evaluate` module: ``evaluate.load(str(metric_path("fvd")))``.

Unlike the classification metrics beside it, FVD needs a network (DeepMind's I3D), so this file imports the installed
``hf_i3d`` package (an absolute import, which works from evaluate's cache copy). Videos are embedded as they arrive
and only running float64 statistics are kept per side (``hf_i3d.fvd.FVDStatistics``), so ``add_batch`` takes any
numbers of real and generated videos and nothing large goes through evaluate's Arrow cache.
"""

from __future__ import annotations

import datasets
import evaluate

from hf_i3d.fvd import DEFINITION, DEFINITION_VERSION, FVDStatistics, compute_statistics

_DESCRIPTION = f"""
Fréchet Video Distance (Unterthiner et al. 2018, arXiv:1812.01717) as google-research `frechet_video_distance`
computes it with TF-GAN: {DEFINITION}. Definition version {DEFINITION_VERSION}. Lower is better; 0 for identical sets.
FVD is biased for small N: report N, T, resolution and clip rule, and compare only numbers computed alike.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated videos, (N, T, H, W, 3) uint8 0..255 (numpy or torch), float with `value_range`, an
        iterable of such batches, or saved statistics (a path from `FVDStatistics.save`, or `FVDStatistics`).
    references: real videos, in the same forms.
    value_range (`tuple`, optional): (0, 1) or (0, 255) for float videos (required for them).
    batch_size (`int`, defaults to 16): videos per I3D forward pass.
    device (`str`, optional): where the network runs (default CUDA if available, else CPU).
    Under torch.distributed (`accelerate launch`) give every process the SAME videos: the processes split the
    batches among themselves and merge the statistics (evaluate's own `num_process` / `process_id` are not used).
Returns:
    `dict`: `fvd` (float), `num_real`, `num_fake`, `num_frames`, `definition`.
Examples:
    >>> fvd = evaluate.load(str(hf_i3d.metrics.metric_path("fvd")))
    >>> fvd.compute(predictions=fake_uint8, references=real_uint8)["fvd"]
"""

_CITATION = """
@article{unterthiner2018fvd,
    title={Towards Accurate Generative Models of Video: A New Metric \\& Challenges},
    author={Unterthiner, Thomas and van Steenkiste, Sjoerd and Kurach, Karol and Marinier, Rapha{\\"e}l and
            Michalski, Marcin and Gelly, Sylvain},
    journal={arXiv preprint arXiv:1812.01717},
    year={2018}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FVD(evaluate.Metric):
    """`evaluate` wrapper around ``hf_i3d.fvd``: streaming statistics per side, FVD on ``compute``."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # what the statistics are made of: one 400-d I3D embedding per video (the videos are not stored)
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("float32")),
                }
            ),
            reference_urls=[
                "https://github.com/google-research/google-research/tree/master/frechet_video_distance",
                "https://github.com/tensorflow/gan/blob/master/tensorflow_gan/python/eval/classifier_metrics.py",
            ],
        )

    def _statistics(self, side: str, videos, **options) -> None:
        if videos is None:
            return
        if not hasattr(self, "_sides"):
            self._sides: dict[str, FVDStatistics] = {}
        # a fresh accumulator per side, so that statistics passed in by the caller are never changed
        side_stats = self._sides.setdefault(side, FVDStatistics())
        side_stats.merge(compute_statistics(videos, **options))

    def add_batch(
        self,
        *,
        predictions=None,
        references=None,
        value_range=None,
        batch_size: int = 16,
        device=None,
        **kwargs,
    ) -> None:
        """Embed a batch of generated (``predictions``) and/or real (``references``) videos into the running
        statistics; the two sides may have different numbers of videos."""
        options = dict(value_range=value_range, batch_size=batch_size, device=device)
        self._statistics("fake", predictions, **options)
        self._statistics("real", references, **options)

    def compute(
        self,
        *,
        predictions=None,
        references=None,
        value_range=None,
        batch_size: int = 16,
        device=None,
        **kwargs,
    ) -> dict:
        """FVD of everything added (plus ``predictions`` / ``references`` given here); the statistics are reset."""
        self.add_batch(
            predictions=predictions,
            references=references,
            value_range=value_range,
            batch_size=batch_size,
            device=device,
        )
        sides = getattr(self, "_sides", {})
        self._sides = {}
        missing = [
            name for name, side in (("references", "real"), ("predictions", "fake")) if side not in sides
        ]
        if missing:
            raise ValueError(
                f"FVD needs both predictions and references; no {' or '.join(missing)} were given"
            )
        return self._compute(predictions=sides["fake"], references=sides["real"])

    def _compute(self, predictions: FVDStatistics, references: FVDStatistics) -> dict:
        return {
            "fvd": references.distance(predictions),
            "num_real": references.num_videos,
            "num_fake": predictions.num_videos,
            "num_frames": references.num_frames,
            "definition": references.definition,
        }
