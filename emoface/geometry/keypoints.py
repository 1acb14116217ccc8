"""face-vid2vid keypoint maths: head-pose bins, rotations and ``kp = R kp_canonical + t + exp``.

Pure, batched, differentiable tensor functions shared by the renderer (:mod:`emoface.networks.
face_vid2vid`), its training system and the landmarks-to-keypoints stage.

Conventions (those of the public face-vid2vid implementation, which the public checkpoints
were trained with):
    * Keypoints live in the renderer's normalised volume: x to the image right and y down in
      ``[-1, 1]`` (``grid_sample`` coordinates), z the depth.
    * ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)``, the same convention as
      :func:`emoface.geometry.rotations.euler_to_matrix` and the head pose preprocessing
      estimates, so a pose from the cache and a pose from the estimator mean the same rotation.
    * Angles come out of the estimator as 66 bins of 3 degrees:
      ``degrees = softmax(logits) . [0..65] * 3 - 99`` (the range [-99, 99)).
    * The public code turns degrees into radians with ``degrees / 180 * 3.14`` (not pi); the
      checkpoints learned their angles in that unit, so :func:`rotation_from_ypr` does the same
      by default (:data:`FACE_VID2VID_PI`). The difference is 0.05 % of the angle.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from emoface.geometry.alignment import umeyama
from emoface.geometry.rotations import euler_to_matrix, matrix_to_euler

NUM_BINS = 66
"""Bins per head-pose angle of the face-vid2vid estimator."""
BIN_WIDTH = 3.0
"""Degrees per bin."""
BIN_OFFSET = -99.0
"""Degrees of bin 0's index (``degrees = index * BIN_WIDTH + BIN_OFFSET``)."""
FACE_VID2VID_PI = 3.14
"""The value of pi the public face-vid2vid code converts degrees with (``deg / 180 * 3.14``)."""


def bins_to_degrees(logits: Tensor, bin_width: float = BIN_WIDTH, offset: float = BIN_OFFSET) -> Tensor:
    """Expected angle of a head-pose bin distribution.

    Args:
        logits: ``(..., num_bins)`` raw bin scores of the estimator.

    Returns:
        ``(...)`` degrees: ``softmax(logits) . [0..num_bins-1] * bin_width + offset``.
    """
    index = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return (torch.softmax(logits, dim=-1) * index).sum(-1) * bin_width + offset


def degrees_to_bins(
    degrees: Tensor, num_bins: int = NUM_BINS, bin_width: float = BIN_WIDTH, offset: float = BIN_OFFSET
) -> Tensor:
    """The bin index holding each angle (targets of a bin classification loss).

    Args:
        degrees: ``(...)`` angles.

    Returns:
        ``(...)`` int64 bin indices in ``[0, num_bins)`` (angles outside the range are clamped).
    """
    index = torch.floor((degrees - offset) / bin_width)
    return index.clamp(0, num_bins - 1).long()


def rotation_from_ypr(yaw: Tensor, pitch: Tensor, roll: Tensor, pi: float = FACE_VID2VID_PI) -> Tensor:
    """Rotation ``Rx(pitch) @ Ry(yaw) @ Rz(roll)`` from angles in degrees.

    Args:
        yaw, pitch, roll: ``(...)`` degrees (broadcastable).
        pi: the value of pi for the degree-to-radian conversion; :data:`FACE_VID2VID_PI`
            reproduces the public code exactly, ``math.pi`` gives the true rotation.

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    euler = torch.stack(torch.broadcast_tensors(yaw, pitch, roll), -1)
    return euler_to_matrix(euler * (pi / math.pi))


def transform_keypoints(
    kp_canonical: Tensor, yaw: Tensor, pitch: Tensor, roll: Tensor, translation: Tensor, expression: Tensor,
    pi: float = FACE_VID2VID_PI,
) -> Tensor:  # fmt: skip
    """Posed keypoints ``kp = R(yaw, pitch, roll) @ kp_canonical + t + exp``.

    Args:
        kp_canonical: ``(B, K, 3)`` canonical keypoints (from the keypoint detector).
        yaw, pitch, roll: ``(B,)`` degrees.
        translation: ``(B, 3)``.
        expression: ``(B, 3K)`` or ``(B, K, 3)`` expression deltas.
        pi: see :func:`rotation_from_ypr`.

    Returns:
        ``(B, K, 3)`` transformed keypoints.
    """
    rotation = rotation_from_ypr(yaw, pitch, roll, pi)  # (B, 3, 3)
    rotated = kp_canonical @ rotation.transpose(-1, -2)
    return rotated + translation.unsqueeze(-2) + expression.reshape(kp_canonical.shape)


def keypoints_from_estimate(kp_canonical: Tensor, estimate: dict[str, Tensor], pi: float = FACE_VID2VID_PI) -> Tensor:
    """Posed keypoints from the head estimator's raw outputs (the public ``keypoint_transformation``).

    Args:
        kp_canonical: ``(B, K, 3)``.
        estimate: ``{"yaw", "pitch", "roll": (B, 66) bin logits, "t": (B, 3), "exp": (B, 3K)}``.

    Returns:
        ``(B, K, 3)`` transformed keypoints.
    """
    angles = [bins_to_degrees(estimate[name]) for name in ("yaw", "pitch", "roll")]
    return transform_keypoints(kp_canonical, *angles, estimate["t"], estimate["exp"], pi)


def fit_keypoint_parameters(
    keypoints: Tensor, kp_canonical: Tensor, pi: float = FACE_VID2VID_PI
) -> dict[str, Tensor]:
    """Which parameters explain a set of posed keypoints (the inverse of :func:`transform_keypoints`).

    The split into rotation, translation and expression is not unique (``exp`` alone could
    explain anything); this returns the least-squares **rigid** part (Kabsch: rotation and
    translation, no scale) and the residual as expression, so ``exp`` is the smallest deformation
    in the L2 sense and has zero mean over the keypoints. Feeding the result back through
    :func:`transform_keypoints` reproduces ``keypoints`` (up to float error).

    Args:
        keypoints: ``(..., K, 3)`` posed keypoints.
        kp_canonical: ``(..., K, 3)`` canonical keypoints (broadcastable).
        pi: the degree unit of the returned angles (see :func:`rotation_from_ypr`).

    Returns:
        ``{"yaw", "pitch", "roll": (...) degrees, "t": (..., 3), "exp": (..., K, 3), "rotation": (..., 3, 3)}``.
    """
    kp_canonical, keypoints = torch.broadcast_tensors(kp_canonical, keypoints)
    rotation, _, _ = umeyama(kp_canonical, keypoints)  # the rotation does not depend on the scale
    rotated = kp_canonical @ rotation.transpose(-1, -2)
    translation = (keypoints - rotated).mean(-2)
    expression = keypoints - rotated - translation.unsqueeze(-2)
    yaw, pitch, roll = (matrix_to_euler(rotation) * (math.pi / pi)).unbind(-1)
    return {"yaw": yaw, "pitch": pitch, "roll": roll, "t": translation, "exp": expression, "rotation": rotation}
