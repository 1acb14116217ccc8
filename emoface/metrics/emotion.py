"""Emotion accuracy of generated videos against their conditioning emotion."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from emoface.emotions import EMOTIONS, NUM_EMOTIONS
from emoface.metrics import functional as MF
from emoface.metrics.base import FrozenEvaluatorMixin


class EmotionLogitsAccuracy(Metric):
    """Top-1 accuracy (+ per-class accuracies) of emotion logits: :class:`EmotionAccuracy` without a classifier.

    For a system that already has the logits (e.g. the classifier's own validation).
    ``update(logits, target)``: logits ``(B, 8)`` in :data:`EMOTIONS` order, target ``(B,)`` long
    indices in :data:`EMOTIONS`. ``compute()`` returns ``{"accuracy": (), "per_class": (8,)}``
    (NaN for classes never seen).
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", torch.zeros(NUM_EMOTIONS, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(NUM_EMOTIONS, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count the hits of ``logits (B, 8)`` against ``target (B,)``."""
        target = target.to(self.correct.device).long()
        hits = (logits.argmax(-1).to(target.device) == target).double()
        self.correct = self.correct + torch.bincount(target, weights=hits, minlength=NUM_EMOTIONS)
        self.total = self.total + torch.bincount(target, minlength=NUM_EMOTIONS).double()

    def compute(self) -> dict[str, Tensor]:
        """``{"accuracy": (), "per_class": (8,)}``."""
        if self.total.sum() == 0:
            raise RuntimeError(f"{type(self).__name__}.compute() called before any update()")
        return {"accuracy": self.correct.sum() / self.total.sum(), "per_class": self.correct / self.total}


class EmotionAccuracy(FrozenEvaluatorMixin, EmotionLogitsAccuracy):
    """Video-level top-1 emotion accuracy (+ per-class accuracies) with a video classifier.

    The classifier (Emotion-FAN style, :class:`emoface.networks.EmotionFAN`) gives one prediction
    per video. Label order mapping: the classifier's outputs are named by ``labels`` (default:
    the network's ``labels`` attribute, else :data:`emoface.emotions.EMOTIONS`); they are
    re-ordered into :data:`EMOTIONS` order, the order of ``target``. For EAT's Emotion-FAN
    (0 happy, 1 angry, 2 disgust, 3 fear, 4 sad, 5 neutral, 6 surprised, 7 contempt) pass
    ``labels=emoface.networks.emotion_fan.EMOTION_FAN_LABELS``.

    ``update(videos, target)``: videos ``(B, T, 3, H, W)`` uint8 or [0, 1] RGB face crops,
    target ``(B,)`` long indices in :data:`EMOTIONS`. ``compute()`` returns
    ``{"accuracy": (), "per_class": (8,)}`` (NaN for classes never seen).

    Args:
        net: the classifier; ``None`` loads :meth:`EmotionFAN.from_pretrained` from ``weights``.
        weights: checkpoint path when ``net`` is ``None`` (default: the hub cache file).
        labels: class names of the classifier outputs.
        frame_chunk: frames per encoder pass.
    """

    _evaluators = ("net",)

    def __init__(
        self,
        net: torch.nn.Module | None = None,
        weights: str | os.PathLike | None = None,
        labels: Sequence[str] | None = None,
        frame_chunk: int = 64,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if net is None:
            from emoface.networks.emotion_fan import EmotionFAN

            net = EmotionFAN.from_pretrained(weights)
        self.net = net
        self._freeze_evaluators()
        self.labels = tuple(labels if labels is not None else getattr(net, "labels", EMOTIONS))
        self.frame_chunk = frame_chunk

    @torch.no_grad()
    def logits(self, videos: Tensor) -> Tensor:
        """``(B, T, 3, H, W)`` -> ``(B, 8)`` logits in :data:`EMOTIONS` order."""
        out = self.net(MF.as_videos(videos), frame_chunk=self.frame_chunk)
        return MF.reorder_logits(out, self.labels)

    def update(self, videos: Tensor, target: Tensor, precomputed_logits: bool = False) -> None:
        """Classify ``(B, T, 3, H, W)`` videos and count hits against ``target (B,)``.

        With ``precomputed_logits=True``, ``videos`` are ``(B, 8)`` logits in EMOTIONS order.
        """
        super().update(videos if precomputed_logits else self.logits(videos), target)
