"""Shared machinery of emoface's Metric classes.

Averaging convention (all video metrics): each video's score is the mean over its frames; the
metric is the mean over videos. States are sums of per-video scores and video counts with
``dist_reduce_fx="sum"``, so the value is identical on 1 or N ranks (up to float64 rounding).
"""

from __future__ import annotations

from collections.abc import Iterable

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
