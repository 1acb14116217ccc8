"""LivePortrait's motion maths: head-pose bins, its rotation convention and the keypoint transform.

Pure, batched, differentiable tensor functions. The conventions are LivePortrait's own (they
differ from face-vid2vid's, :mod:`emoface.geometry.keypoints`):

* Angles are 66 bins of 3 degrees with the offset 97.5 (not 99):
  ``degrees = softmax(logits) . [0..65] * 3 - 97.5``.
* The rotation is built from pitch (about x), yaw (about y) and roll (about z) as
  ``Rz(roll) @ Ry(yaw) @ Rx(pitch)`` and used **transposed**, on row vectors:
  ``kp_canonical @ R`` with ``R = (Rz Ry Rx)^T`` (:func:`rotation_matrix` returns that ``R``).
* Posed keypoints: ``scale * (kp_canonical @ R + exp) + t`` with only ``t``'s x and y applied
  (its z is dropped).
* Relative driving (animating a source with a driving video's motion relative to the driving
  video's first frame): ``R = R_d R_d0^T R_s``, ``exp = exp_s + (exp_d - exp_d0)``,
  ``scale = scale_s * scale_d / scale_d0``, ``t = t_s + (t_d - t_d0)`` (:func:`relative_motion`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from emoface.geometry.keypoints import bins_to_degrees

NUM_KP = 21
"""Implicit keypoints of the public LivePortrait networks."""
NUM_BINS = 66
"""Bins per head-pose angle."""
BIN_WIDTH = 3.0
"""Degrees per bin."""
BIN_OFFSET = -97.5
"""Degrees of bin 0 (LivePortrait's offset; face-vid2vid's is -99)."""
ANGLES = ("pitch", "yaw", "roll")
"""The motion extractor's angle heads, in LivePortrait's order."""


def headpose_degrees(logits: Tensor) -> Tensor:
    """Expected angle of LivePortrait's bin distribution.

    Args:
        logits: ``(..., 66)`` raw bin scores of the motion extractor.

    Returns:
        ``(...)`` degrees: ``softmax(logits) . [0..65] * 3 - 97.5``.
    """
    return bins_to_degrees(logits, bin_width=BIN_WIDTH, offset=BIN_OFFSET)


def rotation_matrix(pitch: Tensor, yaw: Tensor, roll: Tensor) -> Tensor:
    """LivePortrait's rotation, in the row-vector form its keypoints use (``kp @ R``).

    Args:
        pitch, yaw, roll: ``(B,)`` (or ``(B, 1)``) degrees.

    Returns:
        ``(B, 3, 3)``: ``(Rz(roll) @ Ry(yaw) @ Rx(pitch))^T``.
    """
    # degrees / 180 * pi, in that order (LivePortrait's arithmetic).
    x, y, z = (angle.reshape(-1) / 180 * math.pi for angle in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rot_x = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], -1).view(-1, 3, 3)
    rot_y = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], -1).view(-1, 3, 3)
    rot_z = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], -1).view(-1, 3, 3)
    return (rot_z @ rot_y @ rot_x).transpose(1, 2)


def transform_keypoints(kp_canonical: Tensor, rotation: Tensor, exp: Tensor, scale: Tensor, t: Tensor) -> Tensor:
    """Posed keypoints ``scale * (kp_canonical @ R + exp) + (t_x, t_y, 0)``.

    Args:
        kp_canonical: ``(B, K, 3)`` (or ``(B, 3K)``) canonical keypoints.
        rotation: ``(B, 3, 3)`` from :func:`rotation_matrix`.
        exp: ``(B, K, 3)`` (or ``(B, 3K)``) expression deltas.
        scale: ``(B, 1)`` (or ``(B,)``).
        t: ``(B, 3)``; its z is not applied.

    Returns:
        ``(B, K, 3)``.
    """
    b = rotation.shape[0]
    kp = kp_canonical.reshape(b, -1, 3) @ rotation + exp.reshape(b, -1, 3)
    kp = kp * scale.reshape(b, 1, 1)
    shift = torch.cat([t[:, :2], torch.zeros_like(t[:, 2:3])], dim=-1)  # (B, 3), z dropped
    return kp + shift[:, None, :]


def keypoints_from_motion(kp_canonical: Tensor, motion: dict[str, Tensor]) -> Tensor:
    """Posed keypoints ``(B, K, 3)`` from motion parameters in degrees.

    Args:
        kp_canonical: ``(B, K, 3)``.
        motion: ``pitch``, ``yaw``, ``roll`` ``(B,)`` degrees, ``exp`` ``(B, 3K)``, ``scale``
            ``(B, 1)``, ``t`` ``(B, 3)``.
    """
    rotation = rotation_matrix(motion["pitch"], motion["yaw"], motion["roll"])
    return transform_keypoints(kp_canonical, rotation, motion["exp"], motion["scale"], motion["t"])


def relative_motion(
    source: dict[str, Tensor], driving: dict[str, Tensor], driving_first: dict[str, Tensor]
) -> dict[str, Tensor]:
    """The source's motion moved as the driving frames move relative to the first driving frame.

    Args:
        source, driving_first: motion of one frame (``(1, ...)``, as :func:`keypoints_from_motion`).
        driving: motion of N frames.

    Returns:
        ``rotation`` ``(N, 3, 3)`` (``R_d R_d0^T R_s`` in row-vector form), ``exp`` ``(N, 3K)``,
        ``scale`` ``(N, 1)``, ``t`` ``(N, 3)`` with z 0.
    """
    def rot(m: dict[str, Tensor]) -> Tensor:
        return rotation_matrix(m["pitch"], m["yaw"], m["roll"])

    n = driving["t"].shape[0]
    rotation = rot(driving) @ rot(driving_first).transpose(1, 2) @ rot(source)
    exp = source["exp"].reshape(1, -1) + driving["exp"].reshape(n, -1) - driving_first["exp"].reshape(1, -1)
    scale = source["scale"].reshape(1, 1) * driving["scale"].reshape(n, 1) / driving_first["scale"].reshape(1, 1)
    t = source["t"].reshape(1, 3) + driving["t"] - driving_first["t"].reshape(1, 3)
    t = torch.cat([t[:, :2], torch.zeros_like(t[:, 2:])], dim=-1)
    return {"rotation": rotation, "exp": exp, "scale": scale, "t": t}


__all__ = [
    "ANGLES", "BIN_OFFSET", "BIN_WIDTH", "NUM_BINS", "NUM_KP", "headpose_degrees", "keypoints_from_motion",
    "relative_motion", "rotation_matrix", "transform_keypoints",
]  # fmt: skip
