"""The iBUG-68 landmark layout, index groups and the canonical 3D mean face.

Coordinates of the canonical frame follow :mod:`emoface.geometry.rotations` (x right, y down,
z away from the camera). The mean face is centred on its centroid and scaled so that the
outer eye corners (36, 45) are 1.0 apart; "normalized landmarks" everywhere in emoface are
landmarks brought into this frame by a similarity transform (see :mod:`.alignment`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

NUM_LANDMARKS = 68

JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))  # the subject's right: image left
LEFT_BROW = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
MOUTH_OUTER = tuple(range(48, 60))
MOUTH_INNER = tuple(range(60, 68))
MOUTH = MOUTH_OUTER + MOUTH_INNER
UPPER_INNER_LIP, LOWER_INNER_LIP = 62, 66  # the middles of the inner lip contours
FACE_WITHOUT_MOUTH = tuple(i for i in range(NUM_LANDMARKS) if i not in MOUTH)
EYES = (RIGHT_EYE, LEFT_EYE)
"""Per-eye landmark groups; eye index 0 is the subject's right eye (36-41), 1 the left (42-47)."""

# Points that move little with expression: used to estimate head pose robustly.
EYEBALL_RADIUS = 0.13
"""Eyeball radius in canonical units (about 12 mm against a 90 mm outer-eye-corner distance).

The eyeball centre sits this far behind the centre of the eye contour; a pupil looking along
the gaze direction ``d`` lies at ``eye_centre + EYEBALL_RADIUS * (d - (0, 0, -1))``.
"""

RIGID = tuple(range(27, 36)) + (36, 39, 42, 45) + (0, 1, 15, 16)


def _mirror_permutation() -> tuple[int, ...]:
    """Each point's partner in a left-right mirror image (iBUG-68 contours run left to right)."""
    pairs = (
        (range(0, 17), range(16, -1, -1)),  # jaw
        (range(17, 27), range(26, 16, -1)),  # brows
        (range(27, 31), range(27, 31)),  # nose bridge
        (range(31, 36), range(35, 30, -1)),  # nostrils
        (range(36, 48), (45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40)),  # eyes
        (range(48, 55), range(54, 47, -1)),  # upper outer lip
        (range(55, 60), range(59, 54, -1)),  # lower outer lip
        (range(60, 65), range(64, 59, -1)),  # upper inner lip
        (range(65, 68), range(67, 64, -1)),  # lower inner lip
    )
    partner = [0] * NUM_LANDMARKS
    for points, partners in pairs:
        for point, other in zip(points, partners, strict=True):
            partner[point] = other
    return tuple(partner)


MIRRORED = _mirror_permutation()
"""``MIRRORED[i]``: the landmark that point ``i`` becomes in a left-right mirror image (36 <-> 45, 48 <-> 54, ...)."""


def _build_mean_face() -> np.ndarray:
    """Hand-built, anatomically plausible iBUG-68 mean face ``(68, 3)`` (x right, y down, z back)."""
    pts = np.zeros((NUM_LANDMARKS, 3), dtype=np.float64)
    # Jaw: half an ellipse from the right temple (image left) under the chin to the left temple.
    phi = np.linspace(math.pi + 0.08, -0.08, 17)
    pts[0:17, 0] = 0.74 * np.cos(phi)
    pts[0:17, 1] = -0.18 + 1.08 * np.sin(phi)
    pts[0:17, 2] = 0.10 + 0.45 * np.abs(np.cos(phi))
    # Brows: arches above the eyes.
    t = np.linspace(0.0, 1.0, 5)
    pts[17:22, 0] = -0.62 + 0.50 * t
    pts[17:22, 1] = -0.40 - 0.09 * np.sin(math.pi * (0.3 + 0.7 * t))
    pts[17:22, 2] = 0.02 - 0.06 * t
    pts[22:27] = pts[17:22][::-1] * np.array([-1.0, 1.0, 1.0])
    # Nose bridge (27-30) and base (31-35); the tip is nearest to the camera (smallest z).
    pts[27:31] = np.stack([np.zeros(4), np.linspace(-0.28, 0.12, 4), np.linspace(-0.06, -0.30, 4)], 1)
    pts[31:36] = np.stack(
        [np.linspace(-0.15, 0.15, 5), [0.20, 0.22, 0.23, 0.22, 0.20], [-0.10, -0.15, -0.18, -0.15, -0.10]], 1
    )
    # Eyes: outer corner, two upper lid points, inner corner, two lower lid points.
    right_eye = np.array(
        [[-0.50, -0.20], [-0.41, -0.255], [-0.29, -0.255], [-0.20, -0.20], [-0.29, -0.155], [-0.41, -0.155]]
    )
    pts[36:42, :2] = right_eye
    pts[36:42, 2] = [0.06, 0.0, 0.0, 0.04, 0.0, 0.0]
    pts[42:48] = pts[[39, 38, 37, 36, 41, 40]] * np.array([-1.0, 1.0, 1.0])
    # Mouth outer (48-59) and inner (60-67) contours, closed and neutral.
    outer = np.array(
        [[-0.26, 0.50], [-0.17, 0.445], [-0.06, 0.425], [0.0, 0.435], [0.06, 0.425], [0.17, 0.445],
         [0.26, 0.50], [0.17, 0.565], [0.07, 0.595], [0.0, 0.60], [-0.07, 0.595], [-0.17, 0.565]]
    )
    pts[48:60, :2] = outer
    pts[48:60, 2] = -0.08 + 0.10 * np.abs(outer[:, 0]) / 0.26
    inner = np.array(
        [[-0.21, 0.50], [-0.07, 0.49], [0.0, 0.492], [0.07, 0.49], [0.21, 0.50], [0.07, 0.51], [0.0, 0.512],
         [-0.07, 0.51]]
    )
    pts[60:68, :2] = inner
    pts[60:68, 2] = -0.06 + 0.08 * np.abs(inner[:, 0]) / 0.21
    pts -= pts.mean(0, keepdims=True)
    pts /= np.linalg.norm(pts[45] - pts[36])
    return pts.astype(np.float32)


MEAN_FACE_NP: np.ndarray = _build_mean_face()
"""Canonical mean face ``(68, 3)`` as float32 numpy (read-only use)."""


def mean_face(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """Canonical mean face as a tensor ``(68, 3)``."""
    return torch.as_tensor(MEAN_FACE_NP, dtype=dtype, device=device)


def eye_centers(landmarks: Tensor) -> Tensor:
    """Centres of both eye contours, ``(..., 68, D)`` -> ``(..., 2, D)`` (right eye first)."""
    return torch.stack([landmarks[..., list(eye), :].mean(-2) for eye in EYES], -2)


def region_box_masks(landmarks: Tensor, region: tuple[int, ...], height: int, width: int, margin: float = 0.0) -> Tensor:
    """Masks of the bounding box of some landmarks in each image.

    Args:
        landmarks: ``(N, 68, D)`` points whose x, y are pixels (pixel centres at integers).
        region: the landmark indices whose box is wanted (e.g. :data:`MOUTH`).
        height, width: the image size.
        margin: the box grown on every side by this fraction of its larger side.

    Returns:
        ``(N, 1, height, width)`` float masks, 1 inside the box (clipped to the image), 0 outside.
    """
    points = landmarks[:, list(region), :2]  # (N, P, 2)
    low, high = points.min(1).values, points.max(1).values  # (N, 2) x, y
    grow = margin * (high - low).max(-1, keepdim=True).values  # (N, 1)
    low, high = low - grow, high + grow
    xs = torch.arange(width, device=landmarks.device, dtype=landmarks.dtype)
    ys = torch.arange(height, device=landmarks.device, dtype=landmarks.dtype)
    inside_x = (xs >= low[:, :1]) & (xs <= high[:, :1])  # (N, W)
    inside_y = (ys >= low[:, 1:]) & (ys <= high[:, 1:])  # (N, H)
    return (inside_y[:, :, None] & inside_x[:, None, :]).unsqueeze(1).to(landmarks.dtype)


def inner_lip_opening(landmarks: Tensor) -> Tensor:
    """Distance between the middles of the inner lips, ``(..., 68, D)`` -> ``(...)`` (in the points'
    units, over their ``D`` coordinates)."""
    return (landmarks[..., LOWER_INNER_LIP, :] - landmarks[..., UPPER_INNER_LIP, :]).norm(dim=-1)


def mirror_landmarks(landmarks: Tensor, width: int) -> Tensor:
    """The landmarks of the left-right mirror image of a ``width`` pixels wide frame.

    Args:
        landmarks: ``(..., 68, D)`` points whose x are pixels (pixel centres at integers).

    Returns:
        ``(..., 68, D)``: x becomes ``width - 1 - x`` and each point takes its partner's place
        (:data:`MIRRORED`), so index 36 is again the image-left eye's outer corner.
    """
    mirrored = landmarks[..., list(MIRRORED), :].clone()
    mirrored[..., 0] = (width - 1) - mirrored[..., 0]
    return mirrored


def pixels_to_grid(points: Tensor, height: int, width: int) -> Tensor:
    """Pixel x, y ``(..., 2)`` (pixel centres at integers) -> the ``[-1, 1]`` grid units of
    ``grid_sample(align_corners=True)`` and of face-vid2vid's keypoints (-1 and 1 at the outer
    pixel centres)."""
    scale = points.new_tensor([2.0 / (width - 1), 2.0 / (height - 1)])
    return points * scale - 1.0
