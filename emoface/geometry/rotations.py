"""Rotation representations used across emoface (pure, batched, differentiable tensor math).

Conventions (shared by head pose, gaze, mini-MEAD and the face-vid2vid keypoints):
    * Camera frame: x to the image right, y down, z away from the camera (OpenCV).
    * ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` as in face-vid2vid; angles in degrees at the public
      API (``euler`` tensors are ``(..., 3)`` ordered ``(yaw, pitch, roll)``).
    * With that convention, a face (or an eye) looking at the camera looks along ``-z``; positive
      pitch turns the gaze/nose down in the image, positive yaw turns it towards the image left.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _axis_rotations(angles_rad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rx(pitch), Ry(yaw), Rz(roll) for ``angles_rad`` ``(..., 3)`` = (yaw, pitch, roll)."""
    yaw, pitch, roll = angles_rad.unbind(-1)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)

    def stack(rows: list[list[Tensor]]) -> Tensor:
        return torch.stack([torch.stack(row, -1) for row in rows], -2)

    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cr, sr = torch.cos(roll), torch.sin(roll)
    rx = stack([[one, zero, zero], [zero, cp, -sp], [zero, sp, cp]])
    ry = stack([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rz = stack([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])
    return rx, ry, rz


def euler_to_matrix(euler_deg: Tensor) -> Tensor:
    """Rotation matrices from Euler angles.

    Args:
        euler_deg: ``(..., 3)`` (yaw, pitch, roll) in degrees.

    Returns:
        ``(..., 3, 3)`` rotation ``Rx(pitch) @ Ry(yaw) @ Rz(roll)``.
    """
    rx, ry, rz = _axis_rotations(torch.deg2rad(euler_deg))
    return rx @ ry @ rz


def mirror_euler(euler_deg: Tensor) -> Tensor:
    """Euler angles of the head seen in a left-right mirror image.

    Mirroring the camera frame's x axis (``F = diag(-1, 1, 1)``) turns ``Rx(pitch) Ry(yaw) Rz(roll)``
    into ``F R F = Rx(pitch) Ry(-yaw) Rz(-roll)``.

    Args:
        euler_deg: ``(..., 3)`` (yaw, pitch, roll) in degrees.

    Returns:
        ``(..., 3)`` (-yaw, pitch, -roll).
    """
    return euler_deg * euler_deg.new_tensor([-1.0, 1.0, -1.0])


def matrix_to_euler(rotation: Tensor) -> Tensor:
    """Inverse of :func:`euler_to_matrix` (yaw in [-90, 90] degrees).

    Args:
        rotation: ``(..., 3, 3)``.

    Returns:
        ``(..., 3)`` (yaw, pitch, roll) in degrees.
    """
    # R = Rx(p) Ry(y) Rz(r): R[0,2] = sin(y), R[1,2] = -sin(p)cos(y), R[2,2] = cos(p)cos(y),
    # R[0,1] = -cos(y)sin(r), R[0,0] = cos(y)cos(r).
    yaw = torch.asin(rotation[..., 0, 2].clamp(-1.0, 1.0))
    pitch = torch.atan2(-rotation[..., 1, 2], rotation[..., 2, 2])
    roll = torch.atan2(-rotation[..., 0, 1], rotation[..., 0, 0])
    return torch.rad2deg(torch.stack([yaw, pitch, roll], -1))


def matrix_to_rotation_6d(rotation: Tensor) -> Tensor:
    """Continuous 6D representation (Zhou et al. 2019): the first two columns, ``(..., 6)``."""
    return rotation[..., :, :2].transpose(-1, -2).reshape(*rotation.shape[:-2], 6)


def rotation_6d_to_matrix(rot6d: Tensor) -> Tensor:
    """Gram-Schmidt of a 6D vector ``(..., 6)`` into a rotation matrix ``(..., 3, 3)``."""
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def geodesic_angle(rotation_a: Tensor, rotation_b: Tensor) -> Tensor:
    """Angle in degrees of ``rotation_a^T @ rotation_b``; ``(..., 3, 3)`` -> ``(...)``.

    Uses atan2 of the skew and trace parts, which stays accurate (and has finite gradients)
    near 0 and 180 degrees, unlike ``acos((trace - 1) / 2)``.
    """
    relative = rotation_a.transpose(-1, -2) @ rotation_b
    trace = relative.diagonal(dim1=-2, dim2=-1).sum(-1)
    skew = torch.stack(
        [
            relative[..., 2, 1] - relative[..., 1, 2],
            relative[..., 0, 2] - relative[..., 2, 0],
            relative[..., 1, 0] - relative[..., 0, 1],
        ],
        -1,
    )
    sin_term = 0.5 * torch.sqrt((skew**2).sum(-1) + 1e-12)
    cos_term = 0.5 * (trace - 1.0)
    return torch.rad2deg(torch.atan2(sin_term, cos_term))


def gaze_to_vector(gaze_deg: Tensor) -> Tensor:
    """Unit gaze direction in the head frame from (yaw, pitch) degrees ``(..., 2)`` -> ``(..., 3)``.

    The eye's rotation follows the head-pose convention: ``d = Rx(pitch) Ry(yaw) (0, 0, -1)``,
    i.e. ``(-sin yaw, sin pitch cos yaw, -cos pitch cos yaw)``: (0, 0) looks at the camera,
    positive pitch looks down, positive yaw towards the image left.
    """
    yaw, pitch = torch.deg2rad(gaze_deg).unbind(-1)
    return torch.stack(
        [-torch.sin(yaw), torch.sin(pitch) * torch.cos(yaw), -torch.cos(pitch) * torch.cos(yaw)], -1
    )


def vector_to_gaze(direction: Tensor) -> Tensor:
    """Inverse of :func:`gaze_to_vector`: ``(..., 3)`` (any length) -> (yaw, pitch) degrees."""
    d = F.normalize(direction, dim=-1)
    yaw = torch.asin((-d[..., 0]).clamp(-1.0, 1.0))
    pitch = torch.atan2(d[..., 1], -d[..., 2])
    return torch.rad2deg(torch.stack([yaw, pitch], -1))


def angular_error(gaze_a_deg: Tensor, gaze_b_deg: Tensor) -> Tensor:
    """Angle in degrees between two gaze directions given as (yaw, pitch) ``(..., 2)`` -> ``(...)``."""
    a, b = gaze_to_vector(gaze_a_deg), gaze_to_vector(gaze_b_deg)
    cross = torch.linalg.vector_norm(torch.cross(a, b, dim=-1), dim=-1)
    return torch.rad2deg(torch.atan2(cross, (a * b).sum(-1)))

