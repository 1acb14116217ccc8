"""Gaze from the pupil position inside the eye (pure tensor math).

A pupil looking along the head-relative unit direction ``d`` (see
:func:`emoface.geometry.rotations.gaze_to_vector`) sits on a sphere of radius ``r`` (the
eyeball, :data:`emoface.geometry.landmarks.EYEBALL_RADIUS` in canonical units) whose front point
is the centre of the eye contour: ``pupil = eye_centre + r * (d - (0, 0, -1))``. With
``d = (-sin yaw, sin pitch cos yaw, -cos pitch cos yaw)`` the in-plane offset of the pupil gives
the angles back: ``yaw = asin(-dx / r)``, ``pitch = asin(dy / (r cos yaw))``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from emoface.geometry.landmarks import EYEBALL_RADIUS


def pupil_offset_to_gaze(offset: Tensor, radius: float = EYEBALL_RADIUS) -> Tensor:
    """Head-relative gaze angles from the pupil offset in the canonical frame.

    Args:
        offset: ``(..., 2)`` or ``(..., 3)`` pupil minus eye-contour centre, canonical units
            (only x and y are used).
        radius: eyeball radius in the same units.

    Returns:
        ``(..., 2)`` (yaw, pitch) in degrees, yaw and pitch within [-90, 90].
    """
    sin_yaw = (-offset[..., 0] / radius).clamp(-1.0, 1.0)
    yaw = torch.asin(sin_yaw)
    cos_yaw = torch.cos(yaw).clamp_min(1e-6)
    pitch = torch.asin((offset[..., 1] / (radius * cos_yaw)).clamp(-1.0, 1.0))
    return torch.rad2deg(torch.stack([yaw, pitch], -1))


def gaze_to_pupil_offset(gaze_deg: Tensor, radius: float = EYEBALL_RADIUS) -> Tensor:
    """Inverse of :func:`pupil_offset_to_gaze`: ``(..., 2)`` degrees -> ``(..., 3)`` canonical offset."""
    yaw, pitch = torch.deg2rad(gaze_deg).unbind(-1)
    direction = torch.stack(
        [-torch.sin(yaw), torch.sin(pitch) * torch.cos(yaw), -torch.cos(pitch) * torch.cos(yaw)], -1
    )
    return radius * (direction + torch.tensor([0.0, 0.0, 1.0], dtype=direction.dtype, device=direction.device))
