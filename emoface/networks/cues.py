"""The three cues of stage 1 (normalized landmarks, gaze, head pose) as network features.

Shared by the sequentializer (which feeds its previous step's cues back in) and the
collaborative cue emotion classifier, so that both read cues the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emoface.geometry.landmarks import NUM_LANDMARKS
from emoface.geometry.rotations import matrix_to_rotation_6d

LANDMARK_FEATURE_SCALE = 4.0
"""Canonical landmark coordinates span about +-0.5; this brings offsets and faces to ~unit range."""
GAZE_FEATURE_SCALE = 30.0
"""Degrees per unit of the gaze features."""

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
"""6D representation of the identity rotation (first two columns of I)."""

CUE_FEATURES = NUM_LANDMARKS * 3 + 4 + 6 + 3 + 1
"""Width of :func:`cue_features`: landmark offsets, gaze, 6D rotation, translation, log-scale."""
CUE_SLICES = {
    "landmarks": slice(0, NUM_LANDMARKS * 3),
    "gaze": slice(NUM_LANDMARKS * 3, NUM_LANDMARKS * 3 + 4),
    "pose": slice(NUM_LANDMARKS * 3 + 4, CUE_FEATURES),
}
"""Where each cue sits in :func:`cue_features`."""
CLASSIFIER_FEATURES = NUM_LANDMARKS * 3 + 4 + 6
"""Width of :func:`classifier_features`: centred landmarks, gaze, 6D rotation."""


def identity_6d(like: Tensor) -> Tensor:
    """6D identity rotation with ``like``'s dtype and device, ``(6,)``."""
    return torch.tensor(IDENTITY_6D, dtype=like.dtype, device=like.device)


def cue_features(
    normalized_landmarks: Tensor,
    gaze: Tensor,
    rotation: Tensor,
    translation: Tensor,
    scale: Tensor,
    ref_normalized_landmarks: Tensor,
    ref_translation: Tensor,
    ref_scale: Tensor,
) -> Tensor:
    """Cues of one or more frames as the sequentializer's feedback vector (relative to the reference).

    Args:
        normalized_landmarks: ``(B, T, 68, 3)`` canonical frame.
        gaze: ``(B, T, 2, 2)`` per-eye (yaw, pitch) degrees.
        rotation: ``(B, T, 3, 3)`` head rotation.
        translation: ``(B, T, 3)`` pixels.
        scale: ``(B, T)`` pixels per canonical unit.
        ref_normalized_landmarks: ``(B, 68, 3)``.
        ref_translation: ``(B, 3)`` reference head translation (pixels).
        ref_scale: ``(B,)`` reference head scale.

    Returns:
        ``(B, T, CUE_FEATURES)``; all zeros for "the reference face, frontal, looking ahead".
    """
    batch, frames = normalized_landmarks.shape[:2]
    offsets = (normalized_landmarks - ref_normalized_landmarks.unsqueeze(1)) * LANDMARK_FEATURE_SCALE
    rot6d = matrix_to_rotation_6d(rotation) - identity_6d(rotation)
    ref_s = ref_scale[:, None, None]
    shift = (translation - ref_translation.unsqueeze(1)) / ref_s  # (B, T, 3) in canonical units
    log_scale = torch.log(scale.clamp_min(1e-6) / ref_scale[:, None].clamp_min(1e-6)).unsqueeze(-1)
    return torch.cat(
        [
            offsets.reshape(batch, frames, -1),
            gaze.reshape(batch, frames, 4) / GAZE_FEATURE_SCALE,
            rot6d,
            shift,
            log_scale,
        ],
        -1,
    )


def classifier_features(
    normalized_landmarks: Tensor, gaze: Tensor, rotation: Tensor, reference: Tensor | None = None
) -> Tensor:
    """Cues as the collaborative emotion classifier reads them (no camera terms).

    Args:
        normalized_landmarks: ``(B, T, 68, 3)``.
        gaze: ``(B, T, 2, 2)`` degrees.
        rotation: ``(B, T, 3, 3)``.
        reference: ``(B, 68, 3)`` the actor's reference face; when given, landmarks are read as
            displacements from it, which removes the identity (face shape) from the expression.

    Returns:
        ``(B, T, CLASSIFIER_FEATURES)``.
    """
    batch, frames = normalized_landmarks.shape[:2]
    centred = normalized_landmarks - normalized_landmarks.mean(-2, keepdim=True)
    if reference is not None:
        centred = centred - (reference - reference.mean(-2, keepdim=True)).unsqueeze(1)
    return torch.cat(
        [
            centred.reshape(batch, frames, -1) * LANDMARK_FEATURE_SCALE,
            gaze.reshape(batch, frames, 4) / GAZE_FEATURE_SCALE,
            matrix_to_rotation_6d(rotation) - identity_6d(rotation),
        ],
        -1,
    )


class GazeBins(nn.Module):
    """Discretized gaze angles: a class over ``bins`` bins plus a within-bin offset per bin.

    The range ``[-max_angle, max_angle]`` degrees is split into ``bins`` equal bins with centres
    ``c_k``. The head gives logits ``l_k`` and offsets ``o_k``; the angle is the expected value
    ``sum_k softmax(l)_k * (c_k + w/2 * tanh(o_k))`` (``w`` the bin width), which is differentiable
    and can fall anywhere in the range. With ``bins = 1`` this degenerates to bounded regression.

    Args:
        bins: number of bins per angle.
        max_angle: half range in degrees.
    """

    def __init__(self, bins: int = 12, max_angle: float = 30.0) -> None:
        super().__init__()
        if bins < 1:
            raise ValueError(f"gaze_bins must be >= 1, got {bins}")
        self.bins = bins
        self.max_angle = max_angle
        self.width = 2.0 * max_angle / bins
        centres = -max_angle + self.width * (torch.arange(bins, dtype=torch.float32) + 0.5)
        self.register_buffer("centres", centres, persistent=False)

    def angles(self, logits: Tensor, offsets: Tensor) -> Tensor:
        """Expected angle ``(...)`` in degrees from ``logits`` and ``offsets`` ``(..., bins)``."""
        values = self.centres + 0.5 * self.width * torch.tanh(offsets)
        return (logits.softmax(-1) * values).sum(-1)

    def target_bins(self, angles: Tensor) -> Tensor:
        """Bin index ``(...)`` long of ``angles`` ``(...)`` degrees (clamped into the range)."""
        index = torch.floor((angles + self.max_angle) / self.width)
        return index.clamp(0, self.bins - 1).long()


def xavier_small_(linear: nn.Linear, gain: float = 0.1) -> None:
    """Initialise an output layer small so that the first predictions sit near the reference."""
    nn.init.xavier_uniform_(linear.weight, gain=gain)
    nn.init.zeros_(linear.bias)


__all__ = [
    "CLASSIFIER_FEATURES",
    "CUE_FEATURES",
    "CUE_SLICES",
    "GazeBins",
    "classifier_features",
    "cue_features",
    "identity_6d",
    "xavier_small_",
]
