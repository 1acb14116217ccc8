"""Motion metrics of generated cue sequences: how much and how fast head pose and gaze move.

* :class:`MotionStatistics`: within-clip standard deviation and mean absolute velocity of each
  motion cue (head yaw, pitch, roll; gaze yaw, pitch), generated and real, per emotion; the
  headline is the generated / real ratio per cue, averaged over emotions (1.0: lifelike
  amplitude; the deterministic failure is a ratio well below 1: damped motion).
* :class:`FrechetMotionDistance`: the motion analogue of FID, the Frechet distance between the
  Gaussians of real and generated per-sequence motion features
  (:func:`emoface.metrics.functional.motion_features`: per cue mean, std and mean speed).
* :class:`MotionEnergyCorrelation`: correlation of head angular speed with speech energy, per
  video, for generated and real sequences (does the head move with the voice?).

All states are sums with ``dist_reduce_fx="sum"`` (float64), so values are the same on 1 or N
ranks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from emoface.emotions import EMOTIONS
from emoface.metrics import functional as MF
from emoface.metrics.base import GaussianFeatureStates, VideoMeanMetric

_NUM_CUES = len(MF.MOTION_CUES)


class MotionStatistics(Metric):
    """Within-clip motion (std and velocity) per cue and emotion, generated and real.

    ``update(pred_euler, pred_gaze, true_euler, true_gaze, emotion)`` with Euler angles
    ``(B, T, 3)`` degrees (or rotations ``(B, T, 3, 3)``), gaze ``(B, T, 2, 2)`` degrees and
    emotion indices ``(B,)``. ``compute()`` returns scalars: ``std_ratio/<cue>`` and
    ``velocity_ratio/<cue>`` (per emotion: mean generated over mean real; then the mean over the
    emotions seen), ``std_ratio`` and ``velocity_ratio`` (their means over cues) and
    ``real_std/<cue>``, ``generated_std/<cue>`` (degrees, means over clips).
    :meth:`per_emotion` gives the ``(E, C)`` tables.

    Args:
        num_emotions: emotion classes.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, num_emotions: int = len(EMOTIONS), **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.num_emotions = num_emotions
        for kind in ("pred", "true"):
            for stat in ("std", "velocity"):
                self.add_state(f"{kind}_{stat}", torch.zeros(num_emotions, _NUM_CUES, dtype=torch.float64),
                               dist_reduce_fx="sum")  # fmt: skip
        self.add_state("count", torch.zeros(num_emotions, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self, pred_euler: Tensor, pred_gaze: Tensor, true_euler: Tensor, true_gaze: Tensor, emotion: Tensor
    ) -> None:
        """Add a batch of generated and real sequences of the given emotions."""
        emotion = emotion.long().to(self.count.device)
        if emotion.ndim != 1 or emotion.shape[0] != pred_euler.shape[0]:
            raise ValueError(f"emotion must be (B,) = ({pred_euler.shape[0]},), got {tuple(emotion.shape)}")
        if emotion.numel() and (emotion.min() < 0 or emotion.max() >= self.num_emotions):
            raise ValueError(f"emotion indices must be in [0, {self.num_emotions}), got {emotion.tolist()}")
        one_hot = torch.nn.functional.one_hot(emotion, self.num_emotions).double()  # (B, E)
        for kind, euler, gaze in (("pred", pred_euler, pred_gaze), ("true", true_euler, true_gaze)):
            stats = MF.motion_statistics(MF.motion_tracks(euler, gaze))
            for stat, value in stats.items():
                name = f"{kind}_{stat}"
                setattr(self, name, getattr(self, name) + one_hot.T @ value.to(self.count.device))
        self.count = self.count + one_hot.sum(0)

    def per_emotion(self) -> dict[str, Tensor]:
        """``{"pred_std", "true_std", "pred_velocity", "true_velocity"}`` means ``(E, C)`` (NaN for
        emotions not seen) and ``count (E,)``."""
        count = self.count[:, None]
        out = {name: torch.where(count > 0, getattr(self, name) / count.clamp_min(1), torch.nan)
               for name in ("pred_std", "true_std", "pred_velocity", "true_velocity")}  # fmt: skip
        out["count"] = self.count.clone()
        return out

    def compute(self) -> dict[str, Tensor]:
        """Scalar ratios and amplitudes (see the class docstring)."""
        if self.count.sum() == 0:
            raise RuntimeError("MotionStatistics.compute() called before any update()")
        table = self.per_emotion()
        seen = self.count > 0
        out: dict[str, Tensor] = {}
        for stat in ("std", "velocity"):
            ratio = table[f"pred_{stat}"][seen] / table[f"true_{stat}"][seen].clamp_min(1e-9)  # (E', C)
            for c, cue in enumerate(MF.MOTION_CUES):
                out[f"{stat}_ratio/{cue}"] = ratio[:, c].mean()
            out[f"{stat}_ratio"] = ratio.mean()
        for c, cue in enumerate(MF.MOTION_CUES):
            out[f"real_std/{cue}"] = self.true_std[:, c].sum() / self.count.sum()
            out[f"generated_std/{cue}"] = self.pred_std[:, c].sum() / self.count.sum()
        return out


class FrechetMotionDistance(GaussianFeatureStates, Metric):
    """Frechet distance between real and generated motion features (the motion analogue of FID).

    Each sequence gives one feature vector (:func:`emoface.metrics.functional.motion_features`:
    for head yaw, pitch, roll and gaze yaw, pitch, the mean posture, within-clip std and mean
    absolute velocity, in degrees and degrees per frame, 15 dims). ``update(pred_euler, pred_gaze,
    true_euler, true_gaze)`` adds a batch to both sets; sums and outer-product sums are the states,
    so the statistics are exact on any number of ranks. ``compute()`` = pytorch-fid's
    ``calculate_frechet_distance`` of the two Gaussians (degrees squared; lower is better). Like
    FID it is biased upwards for few sequences: compare models on the same sequences.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        dims = len(MF.MOTION_FEATURE_STATISTICS) * _NUM_CUES
        self.dims = dims
        self._add_gaussian_states(dims)

    def update(self, pred_euler: Tensor, pred_gaze: Tensor, true_euler: Tensor, true_gaze: Tensor) -> None:
        """Add generated and real sequences (Euler ``(B, T, 3)`` or rotations, gaze ``(B, T, 2, 2)``)."""
        for kind, euler, gaze in (("fake", pred_euler, pred_gaze), ("real", true_euler, true_gaze)):
            self._add_features(kind, MF.motion_features(MF.motion_tracks(euler, gaze)))

    def _statistics(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        return self._gaussian(kind, "sequences")

    def compute(self) -> Tensor:
        """The distance (float64 scalar)."""
        mu_f, sigma_f = self._statistics("fake")
        mu_r, sigma_r = self._statistics("real")
        return torch.tensor(MF.frechet_distance(mu_f, sigma_f, mu_r, sigma_r), dtype=torch.float64)


class MotionEnergyCorrelation(VideoMeanMetric):
    """Correlation of head motion with speech energy, generated and real (mean over videos).

    ``update(pred_euler, true_euler, energy)`` with Euler ``(B, T, 3)`` degrees (or rotations)
    and speech energy ``(B, T)`` (:func:`emoface.metrics.functional.speech_energy`); per video the
    Pearson correlation of the head's angular speed with the energy
    (:func:`emoface.metrics.functional.motion_energy_correlation`). ``compute()`` =
    ``{"generated", "real", "ratio"}`` (ratio = generated / real).
    """

    higher_is_better = True

    def __init__(self, **kwargs: object) -> None:
        super().__init__(["generated", "real"], **kwargs)

    def update(self, pred_euler: Tensor, true_euler: Tensor, energy: Tensor) -> None:
        """Add a batch of generated and real head poses with their speech energy."""
        self._accumulate({
            "generated": MF.motion_energy_correlation(pred_euler, energy),
            "real": MF.motion_energy_correlation(true_euler, energy),
        })  # fmt: skip

    def compute(self) -> dict[str, Tensor]:
        """``{"generated", "real", "ratio"}``."""
        means = self._means()
        means["ratio"] = means["generated"] / means["real"]
        return means
