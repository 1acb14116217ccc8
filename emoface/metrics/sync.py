"""LSE-C / LSE-D lip-sync scores with SyncNet (syncnet_python's definitions)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

from emoface.metrics import functional as MF
from emoface.metrics.base import FrozenEvaluatorMixin, VideoMeanMetric


class SyncScore(FrozenEvaluatorMixin, VideoMeanMetric):
    """SyncNet confidence (LSE-C, higher is better), distance (LSE-D) and AV offset.

    ``update(videos, audio, sample_rate)`` with face crops ``(B, T, 3, H, W)`` (RGB uint8 or
    [0, 1], 25 fps; crop every method with :func:`emoface.metrics.face_crop`) and waveforms
    ``(B, S)``. Per video, exactly as syncnet_python: 5-frame BGR 0-255 windows resized to the
    network's input size (OpenCV ``INTER_LINEAR`` on uint8, the reference's resize), 13 MFCC at
    100 Hz (20 columns per window), distances to the audio shifted by ``-vshift..vshift`` frames,
    ``mdist`` = mean over frames, LSE-D = min(mdist), LSE-C = median(mdist) - min(mdist), offset = vshift - argmin(mdist). Sign (syncnet_python's):
    the best match pairs frame ``i`` with audio window ``i - offset``, so a positive offset means
    the audio leads the video; audio delayed by ``k`` frames reads ``-k``.
    ``compute()`` = ``{"lse_c", "lse_d", "offset"}``, each the mean over videos.

    Args:
        net: a :class:`emoface.networks.SyncNet`; ``None`` loads the public ``syncnet_v2.model``
            from ``weights`` (default: the torch hub cache).
        weights: weight file when ``net`` is ``None``.
        vshift: largest offset searched, in frames (15 in the reference).
        batch_size: windows per forward pass (does not change the result).
    """

    higher_is_better = True
    _evaluators = ("net",)

    def __init__(
        self,
        net: torch.nn.Module | None = None,
        weights: str | os.PathLike | None = None,
        vshift: int = 15,
        batch_size: int = 50,
        **kwargs: object,
    ) -> None:
        super().__init__(["lse_c", "lse_d", "offset"], **kwargs)
        if net is None:
            from emoface.networks.syncnet import SyncNet

            net = SyncNet.from_pretrained(weights)
        self.net = net
        self._freeze_evaluators()
        self.vshift = vshift
        self.batch_size = batch_size

    @torch.no_grad()
    def update(
        self,
        videos: Tensor,
        audio: Tensor,
        sample_rate: int = MF.SYNCNET_SAMPLE_RATE,
        lengths: Sequence[int] | Tensor | None = None,
    ) -> None:
        """Score a batch of videos with their audio.

        Args:
            videos: ``(B, T, 3, H, W)`` face crops.
            audio: ``(B, S)`` waveforms.
            sample_rate: audio rate (resampled to 16 kHz).
            lengths: valid frames per video when padded.
        """
        scores = MF.sync_scores(self.net, videos, audio, sample_rate, self.vshift, self.batch_size, lengths)
        self._accumulate(scores)

    def compute(self) -> dict[str, Tensor]:
        """``{"lse_c", "lse_d", "offset"}`` means over videos."""
        return self._means()
