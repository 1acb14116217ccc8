"""Shared machinery of emoface's Metric classes.

Averaging convention (all video metrics): each video's score is the mean over its frames; the
metric is the mean over videos. States are sums of per-video scores and video counts with
``dist_reduce_fx="sum"``, so the value is identical on 1 or N ranks (up to float64 rounding).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric


class FrozenEvaluatorMixin:
    """Keeps evaluator networks (SyncNet, InceptionV3, ...) frozen and in eval mode.

    A LightningModule holding the metric calls ``train()`` on its children; BatchNorm or dropout
    in an evaluator would then change the scores, so ``train`` leaves the evaluators in eval mode.
    """

    _evaluators: tuple[str, ...] = ()

    def _freeze_evaluators(self) -> None:
        for name in self._evaluators:
            net = getattr(self, name, None)
            if isinstance(net, nn.Module):
                net.eval()
                net.requires_grad_(False)

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]
        out = super().train(mode)  # type: ignore[misc]
        self._freeze_evaluators()
        return out


class GaussianFeatureStates:
    """Real and generated feature sets of a Frechet-distance Metric (FID, the motion distance) kept
    as float64 sums, outer-product sums and counts (``dist_reduce_fx="sum"``), so their means and
    covariances are exact on any number of ranks."""

    def _add_gaussian_states(self, dims: int) -> None:
        for kind in ("real", "fake"):
            self.add_state(f"{kind}_sum", torch.zeros(dims, dtype=torch.float64), dist_reduce_fx="sum")  # type: ignore[attr-defined]
            self.add_state(f"{kind}_outer", torch.zeros(dims, dims, dtype=torch.float64), dist_reduce_fx="sum")  # type: ignore[attr-defined]
            self.add_state(f"{kind}_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")  # type: ignore[attr-defined]

    def _add_features(self, kind: str, features: Tensor) -> None:
        """Add ``(N, dims)`` features to the ``"real"`` or ``"fake"`` set."""
        features = features.to(device=self.real_count.device, dtype=torch.float64)  # type: ignore[attr-defined]
        setattr(self, f"{kind}_sum", getattr(self, f"{kind}_sum") + features.sum(0))
        setattr(self, f"{kind}_outer", getattr(self, f"{kind}_outer") + features.T @ features)
        setattr(self, f"{kind}_count", getattr(self, f"{kind}_count") + features.shape[0])

    def _gaussian(self, kind: str, items: str) -> tuple[np.ndarray, np.ndarray]:
        """``(mu (dims,), sigma (dims, dims))`` of a set (unbiased covariance); ``items`` names what
        was added (frames, sequences) in the error for fewer than two."""
        n = float(getattr(self, f"{kind}_count"))
        if n < 2:
            raise RuntimeError(f"{type(self).__name__} needs at least 2 {kind} {items}, got {int(n)}")
        mu = getattr(self, f"{kind}_sum").cpu().numpy() / n
        sigma = (getattr(self, f"{kind}_outer").cpu().numpy() - n * np.outer(mu, mu)) / (n - 1)
        return mu, sigma


class VideoMeanMetric(Metric):
    """Mean over videos of named per-video scores (sum states, ``dist_reduce_fx="sum"``).

    Args:
        keys: names of the per-video scores accumulated.
        **kwargs: torchmetrics ``Metric`` options.
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, keys: Iterable[str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._keys = tuple(keys)
        for key in self._keys:
            self.add_state(f"sum_{key}", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_videos", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def _accumulate(self, scores: dict[str, Tensor]) -> None:
        """Add per-video scores ``{key: (B,)}``."""
        count = None
        for key in self._keys:
            value = scores[key].detach().to(device=self.num_videos.device, dtype=torch.float64)
            setattr(self, f"sum_{key}", getattr(self, f"sum_{key}") + value.sum())
            count = value.numel()
        self.num_videos = self.num_videos + (count or 0)

    def _means(self) -> dict[str, Tensor]:
        if self.num_videos == 0:
            raise RuntimeError(f"{type(self).__name__}.compute() called before any update()")
        return {key: getattr(self, f"sum_{key}") / self.num_videos for key in self._keys}
